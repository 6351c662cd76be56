"""Exceptions raised for bad user input; the CLI prints them as one line."""


class InputError(ValueError):
    """Bad input from the user (file, intrinsics, image, config); the message names the input and the fix."""


def read_yaml_mapping(path, what: str, expected: str) -> dict:
    """Read a YAML file holding a mapping, with :class:`InputError` naming ``what`` on any problem.

    Args:
        path: the file.
        what: how to call it in messages, e.g. 'intrinsics file'.
        expected: what the mapping should hold, for the message when it is not a mapping.
    """
    from pathlib import Path

    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} {path} does not exist; pass an existing YAML file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise InputError(f"{what} {path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise InputError(f"{what} {path} must hold a mapping of {expected}")
    return data
