"""Exceptions raised for bad user input; the CLI prints them as one line."""


class InputError(ValueError):
    """Bad input from the user (file, intrinsics, image, config); the message names the input and the fix."""
