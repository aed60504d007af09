"""A run's stored settings, read back to build something again: checked as a new run's before they are used.

config.json lies in the shared runs folder, so its values are as untrusted as the rest of the folder: an image
size of a million pixels would resize a photo to that, and on a served page a synthetic set of a billion
images would be drawn again or a cache folder anywhere on the server written. Whoever builds models' inputs
or data from a stored run asks first, and gets the settings as a RunConfig, or one RunFileError whose str()
says why. Here: the file parsed, its values of the kinds config.py names; the gate's own rules, served or local
as a new run would be asked, are gapdemo.validation.stored_run_config and stored_data_config.
The settings that say only how the run trained (epochs, learning rate, batch size) build nothing here and
are not asked again: a long run trained from the command line can still be evaluated on a served page.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gapdemo.config import RunConfig
from gapdemo.runs.files import read_config
from gapdemo.runs.trust import RunFileError

SECTIONS = ("data", "model", "train")
# The kinds of value config.py's annotations name, as JSON gives them back (a float may come as an int).
KINDS = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "None": (type(None),),
         "tuple[str, ...]": (tuple,)}


def parse_stored_config(run_dir) -> RunConfig:
    """config.json as a RunConfig writing into run_dir's own runs folder (the stored runs_dir is never used)."""
    run_dir = Path(run_dir)
    values = read_config(run_dir)
    if not values:
        raise RunFileError("The run has no readable config.json.")
    try:
        sections = {name: dict(values.get(name, {})) for name in SECTIONS}
        sections["train"]["runs_dir"] = str(run_dir.parent)
        config = RunConfig.from_dict(sections)
    except (TypeError, ValueError):
        raise RunFileError("The run's config.json holds no settings this version of gapdemo reads.") from None
    if not all(_is_of_its_kind(getattr(config, name)) for name in SECTIONS):
        # Checked before any rule compares or multiplies them: a text as batch size would make the memory
        # estimate repeat a string millions of times.
        raise RunFileError("The run's config.json holds values of the wrong kind.")
    return config


def _is_of_its_kind(section) -> bool:
    """True when every field of the dataclass section holds a value of the kind its annotation names."""
    for field in dataclasses.fields(section):
        value = getattr(section, field.name)
        kinds = tuple(kind for name in str(field.type).split(" | ") for kind in KINDS[name])
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            return False
        if isinstance(value, tuple) and not all(isinstance(item, str) for item in value):
            return False
    return True
