"""An optional Weights & Biases run beside ``metrics.jsonl``: the same per-step numbers, the run's
config and provenance, and end-of-run summaries.

``config.log.wandb`` holds the settings (``SETTINGS`` lists every key with its default);
``check_settings`` validates them before anything starts, naming the bad key. ``wandb`` is an extra
(``pip install 'rlvr_jax[wandb]'``), imported only when a run is not disabled.

Choices made for a researcher's expectations:

- **Mode.** ``"auto"`` (the default) honours ``WANDB_MODE`` when it is set, else logs online when
  W&B credentials exist (``WANDB_API_KEY``, ``WANDB_IDENTITY_TOKEN_FILE``, or a ``wandb login``
  entry in ``~/.netrc``), else offline, and says so with the ``wandb sync`` line that uploads it
  later. An explicit ``"online"`` without credentials is refused at start rather than left to hang
  on a login prompt on a cluster node. ``"disabled"`` imports nothing and writes nothing.
- **One W&B run per workdir.** The run id is read from ``<workdir>/wandb_id``, written on the first
  start (through the ``read_text`` / ``write_text`` callables, so a ``gs://`` workdir works), and
  the run is opened with ``resume="allow"``: a resumed training run continues the same W&B run,
  while a deleted-and-recreated workdir gets a new one (a hash of the path would not).
- **Steps.** Every row carries the trainer's step as the metric ``step``, declared the x-axis of
  every other metric (``define_metric``); W&B's own ``_step`` is left to count calls. A run that
  resumes from an earlier checkpoint re-logs the steps after it, which W&B would drop (it refuses
  an ``_step`` lower than the last one); here they are recorded, and the charts show both passes
  over those steps. ``metrics.jsonl`` stays the clean record.
- **Values.** Numbers (Python, NumPy, JAX scalars, one-element arrays) are logged; booleans as 0/1;
  NaN and +-inf (also as the strings "nan", "inf", "-inf" that metrics.jsonl rows hold) as they are
  (W&B records them; charts leave a gap); ``None`` means "not measured this step" and is skipped;
  anything else (other strings, arrays) is skipped with one warning per key.
- **Failures.** Settings, credentials and ``wandb.init`` fail at start. Later errors inside W&B are
  logged once and the training continues: a monitoring side channel does not end a run.
"""
from __future__ import annotations

import math
import netrc
import os
import secrets
import string
import tempfile
import urllib.parse
from typing import Any, Callable, Mapping

from absl import logging

from rlvr_jax import optional

# Every key of config.log.wandb with its default.
SETTINGS: dict[str, Any] = {
    "mode": "auto",  # "auto" | "online" | "offline" | "disabled" (see the module docstring)
    "project": None,  # None: $WANDB_PROJECT, else "rlvr_jax"
    "entity": None,  # None: $WANDB_ENTITY, else the account's default entity
    "name": None,  # None: the workdir's base name
    "group": None,
    "tags": (),  # a sequence of strings, or one comma-separated string
    "notes": None,
    "job_type": None,
    "id": None,  # None: the id kept in <workdir>/wandb_id (created on the first start)
    "dir": None,  # None: $WANDB_DIR, else the workdir when local, else a local temporary folder
    "settings": {},  # passed to wandb.Settings, e.g. {"console": "off", "x_disable_stats": True}
}
MODES = ("auto", "online", "offline", "disabled")
ID_FILE = "wandb_id"
STEP_METRIC = "step"
_DEFAULT_PROJECT = "rlvr_jax"
_STRING_KEYS = ("project", "entity", "name", "group", "notes", "job_type", "id", "dir")
# Characters W&B refuses in run ids and project names.
_FORBIDDEN = set("/\\#?%:")
_ID_ALPHABET = string.ascii_lowercase + string.digits
_NON_FINITE = ("nan", "inf", "-inf")


def _as_dict(value: Any) -> dict:
  """A plain dict from a Mapping or an ml_collections ConfigDict (nested ones too)."""
  if hasattr(value, "to_dict"):
    value = value.to_dict()
  return {k: _as_dict(v) if isinstance(v, Mapping) or hasattr(v, "to_dict") else v
          for k, v in value.items()}


def check_settings(settings: Any, prefix: str = "config.log.wandb") -> None:
  """Raises ValueError naming the first unknown key or bad value of ``settings`` (None is off)."""
  if settings is None:
    return
  if not (isinstance(settings, Mapping) or hasattr(settings, "to_dict")):
    raise ValueError(f"{prefix} must be a mapping of W&B settings or None, not "
                     f"{type(settings).__name__}")
  settings = _as_dict(settings)
  for key in settings:
    if key not in SETTINGS:
      raise ValueError(f"{prefix}.{key} is not a W&B setting; the keys are "
                       f"{', '.join(SETTINGS)}")
  mode = settings.get("mode")
  if mode is not None and mode not in MODES:
    raise ValueError(f"{prefix}.mode={mode!r} must be one of {', '.join(map(repr, MODES))}")
  for key in _STRING_KEYS:
    value = settings.get(key)
    if value is not None and (not isinstance(value, str) or not value.strip()):
      raise ValueError(f"{prefix}.{key}={value!r} must be a non-empty string or None")
  for key in ("id", "project", "entity"):
    value = settings.get(key)
    if value and _FORBIDDEN & set(value):
      raise ValueError(f"{prefix}.{key}={value!r} has a character W&B refuses "
                       f"({' '.join(sorted(_FORBIDDEN & set(value)))})")
  if settings.get("id") and len(settings["id"]) > 64:
    raise ValueError(f"{prefix}.id={settings['id']!r} is longer than W&B's 64 characters")
  tags = settings.get("tags")
  if tags is not None and not isinstance(tags, str):
    if not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) for t in tags):
      raise ValueError(f"{prefix}.tags={tags!r} must be a sequence of strings or one "
                       "comma-separated string")
  extra = settings.get("settings")
  if extra is not None and not isinstance(extra, Mapping):
    raise ValueError(f"{prefix}.settings={extra!r} must be a mapping (wandb.Settings fields)")


def has_credentials(env: Mapping[str, str] | None = None) -> bool:
  """Whether W&B can log in without a prompt: an API key or identity token in the environment, or a
  ``.netrc`` entry for the W&B host (what ``wandb login`` writes)."""
  env = os.environ if env is None else env
  if env.get("WANDB_API_KEY") or env.get("WANDB_IDENTITY_TOKEN_FILE"):
    return True
  host = urllib.parse.urlsplit(env.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
  path = env.get("NETRC") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".netrc")
  try:
    entry = netrc.netrc(path).authenticators(host) if host else None
  except (OSError, netrc.NetrcParseError):
    return False
  return bool(entry and entry[2])


def resolve_mode(mode: str | None, env: Mapping[str, str] | None = None) -> tuple[str, str]:
  """(``"online"`` | ``"offline"`` | ``"disabled"``, why) for a settings mode (None is auto)."""
  env = os.environ if env is None else env
  if mode not in (None, "auto"):
    return mode, "set in the config"
  from_env = {"online": "online", "run": "online", "offline": "offline", "dryrun": "offline",
              "disabled": "disabled"}.get((env.get("WANDB_MODE") or "").strip().lower())
  if from_env:
    return from_env, f"WANDB_MODE={env['WANDB_MODE']}"
  if has_credentials(env):
    return "online", "W&B credentials found"
  return "offline", "no W&B credentials (WANDB_API_KEY or `wandb login`)"


def _epath_read(path: str) -> str:
  from etils import epath  # pylint: disable=import-outside-toplevel
  return epath.Path(path).read_text()


def _epath_write(path: str, text: str) -> None:
  from etils import epath  # pylint: disable=import-outside-toplevel
  path = epath.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(text)


def _is_remote(path: str) -> bool:
  return "://" in path


def run_id_for(workdir: str, read_text: Callable[[str], str] | None = None,
               write_text: Callable[[str, str], None] | None = None) -> str:
  """The W&B run id kept in ``<workdir>/wandb_id``; made and written there on the first call."""
  read_text, write_text = read_text or _epath_read, write_text or _epath_write
  path = workdir.rstrip("/") + "/" + ID_FILE
  try:
    run_id = (read_text(path) or "").strip()
  except FileNotFoundError:
    run_id = ""
  if not run_id:
    run_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))
    write_text(path, run_id + "\n")
  return run_id


def _flatten(tree: Any, prefix: str, sep: str) -> dict[str, Any]:
  if isinstance(tree, Mapping) or hasattr(tree, "to_dict"):
    out: dict[str, Any] = {}
    for k, v in (_as_dict(tree) if hasattr(tree, "to_dict") else tree).items():
      out.update(_flatten(v, f"{prefix}{k}{sep}", sep))
    return out
  return {prefix[:-len(sep)]: tree}


def _config_value(value: Any) -> Any:
  """A JSON value for W&B's config: tuples as lists, non-finite floats and objects as text."""
  if value is None or isinstance(value, (bool, int, str)):
    return value
  if isinstance(value, float):
    return value if math.isfinite(value) else str(value)
  if isinstance(value, (list, tuple)):
    return [_config_value(v) for v in value]
  if hasattr(value, "item") and getattr(value, "size", None) == 1:
    return _config_value(value.item())
  return str(value)


def _scalar(value: Any) -> int | float | None:
  """The number to log, or None when ``value`` is not one."""
  if hasattr(value, "__array__") and getattr(value, "size", None) == 1 and hasattr(value, "item"):
    value = value.item()  # NumPy / JAX scalars and one-element arrays
  if isinstance(value, (bool, int)):
    return int(value)
  if isinstance(value, float):
    return float(value)
  if isinstance(value, str) and value in _NON_FINITE:
    return float(value)  # metrics.jsonl's spelling of a non-finite value (JSON has no NaN)
  return None


class WandbWriter:
  """One W&B run for a workdir: ``log`` per step, ``summary`` at the end, ``close``.

  Create it on the primary process only (as ``MetricsWriter`` writes only there). With
  ``settings=None`` or mode ``"disabled"`` every method does nothing and ``wandb`` is not imported.

  Args:
    settings: ``config.log.wandb`` (a dict or ConfigDict; keys in ``SETTINGS``), or None.
    workdir: the run's workdir (local path or ``gs://...``); it keys the run id and names the run.
    config: the run's config, flat (``{"algo.lr": ...}``) or nested (flattened with dots), stored as
      the W&B run config.
    run_info: provenance (git commit, versions, host, ...), stored in the config as ``run_info.*``.
    read_text, write_text: read / write a small text file at a path (``<workdir>/wandb_id``); the
      defaults use ``etils.epath``. ``read_text`` raises FileNotFoundError for a missing file.
  """

  def __init__(self, settings: Any, *, workdir: str, config: Mapping[str, Any] | None = None,
               run_info: Mapping[str, Any] | None = None,
               read_text: Callable[[str], str] | None = None,
               write_text: Callable[[str, str], None] | None = None):
    check_settings(settings)
    given = _as_dict(settings) if settings is not None else {"mode": "disabled"}
    self.settings = {**SETTINGS, **{k: v for k, v in given.items() if v is not None}}
    self.mode, why = resolve_mode(self.settings["mode"])
    self.run = None
    self.run_id: str | None = None
    self.dir: str | None = None
    self.last_step: int | None = None
    self._skipped: set[str] = set()
    self._failed = False
    if self.mode == "disabled":
      return
    if self.mode == "online" and not has_credentials():
      raise RuntimeError(f"W&B mode 'online' ({why}) but no W&B credentials were found "
                         "(WANDB_API_KEY, WANDB_IDENTITY_TOKEN_FILE or a `wandb login` entry in "
                         "~/.netrc): run `wandb login`, or set config.log.wandb.mode to 'offline' "
                         "or 'auto'")
    wandb = optional.require("wandb", "config.log.wandb (the W&B writer)")
    s = self.settings
    self.run_id = s["id"] or run_id_for(workdir, read_text, write_text)
    self.dir = s["dir"] or os.environ.get("WANDB_DIR") or self._local_dir(workdir)
    os.makedirs(self.dir, exist_ok=True)
    tags = s["tags"].split(",") if isinstance(s["tags"], str) else s["tags"]
    self.run = wandb.init(
        project=s["project"] or os.environ.get("WANDB_PROJECT") or _DEFAULT_PROJECT,
        entity=s["entity"], name=s["name"] or os.path.basename(workdir.rstrip("/")),
        group=s["group"], tags=[t.strip() for t in tags if t.strip()] or None, notes=s["notes"],
        job_type=s["job_type"], id=self.run_id, resume="allow", dir=self.dir, mode=self.mode,
        reinit="create_new", settings=wandb.Settings(**dict(s["settings"])))
    # allow_val_change: a resume may change config keys (--allow_config_changes, total_steps).
    self.run.config.update(self._config(config, run_info), allow_val_change=True)
    self.run.define_metric(STEP_METRIC)
    self.run.define_metric("*", step_metric=STEP_METRIC)
    if self.mode == "offline":
      logging.info("W&B run %s logs offline (%s) to %s; upload it with: wandb sync %s", self.run_id,
                   why, self.dir, self.sync_dir or os.path.join(self.dir, "wandb"))
    else:
      logging.info("W&B run %s logs online (%s): %s", self.run_id, why,
                   getattr(self.run, "url", None))

  @staticmethod
  def _local_dir(workdir: str) -> str:
    if not _is_remote(workdir):
      return os.path.abspath(os.path.expanduser(workdir))
    local = tempfile.mkdtemp(prefix="rlvr_jax_wandb_")
    logging.warning("W&B files for the remote workdir %s go to the local folder %s (set "
                    "config.log.wandb.dir to keep them elsewhere)", workdir, local)
    return local

  @staticmethod
  def _config(config: Mapping[str, Any] | None, run_info: Mapping[str, Any] | None) -> dict:
    flat = _flatten(config, "", ".") if config is not None else {}
    if run_info is not None:
      flat.update(_flatten(run_info, "run_info.", "."))
    return {k: _config_value(v) for k, v in flat.items()}

  @property
  def enabled(self) -> bool:
    return self.run is not None

  @property
  def sync_dir(self) -> str | None:
    """The run's local folder (``<dir>/wandb/offline-run-*`` or ``run-*``), or None."""
    return getattr(getattr(self.run, "settings", None), "sync_dir", None) if self.run else None

  def _fail(self, what: str, error: Exception) -> None:
    if not self._failed:
      logging.exception("W&B %s failed (%s); training goes on, metrics.jsonl has every value; "
                        "later W&B errors are not repeated", what, error)
    self._failed = True

  def log(self, step: int, metrics: Mapping[str, Any]) -> None:
    """Logs one row: the numeric values of ``metrics`` at trainer step ``step``."""
    if self.run is None:
      return
    row: dict[str, Any] = {}
    for key, value in metrics.items():
      if value is None:
        continue
      number = _scalar(value)
      if number is None:
        if key not in self._skipped:
          self._skipped.add(key)
          logging.warning("W&B: metric %r is not a number (%s); not logged to W&B", key,
                          type(value).__name__)
        continue
      row[str(key)] = number
    row[STEP_METRIC] = int(step)
    self.last_step = int(step)
    try:
      self.run.log(row)
    except Exception as e:  # pylint: disable=broad-except
      self._fail("log", e)

  def summary(self, name: str, payload: Mapping[str, Any]) -> None:
    """Puts the numbers and strings of ``payload`` (nested ones too) in the run's summary as
    ``<name>/<key>[/<subkey>...]`` (e.g. ``eval/after/greedy_accuracy``); lists are left out."""
    if self.run is None:
      return
    values = {}
    for key, value in _flatten(payload, f"{name}/", "/").items():
      number = _scalar(value)
      if number is not None or isinstance(value, str):
        values[key] = value if number is None else number
    try:
      self.run.summary.update(values)
    except Exception as e:  # pylint: disable=broad-except
      self._fail("summary", e)

  def close(self, exit_code: int = 0) -> None:
    """Finishes the run (``exit_code`` != 0 marks it failed in W&B); later calls do nothing.

    wandb-core closes the run's local files a moment after this returns (by process exit at the
    latest); ``wandb sync`` of an offline run should wait for the process to end."""
    run, self.run = self.run, None
    if run is None:
      return
    try:
      run.finish(exit_code=exit_code)
    except Exception as e:  # pylint: disable=broad-except
      self._fail("finish", e)

  def __enter__(self) -> "WandbWriter":
    return self

  def __exit__(self, exc_type, exc, tb) -> None:
    self.close(exit_code=0 if exc_type is None else 1)
