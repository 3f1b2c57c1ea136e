"""Help screens without typer's type placeholders.

typer's help prints a type column: ``<bool>`` beside ``--help`` and every flag, ``<str>`` or
``<list[str]>`` beside an argument even when its metavar already names it (``ID``,
``SERVICE``). Our options carry a metavar that says what to give (``URL``, ``PORT``, ``N``) and
flags carry an empty one; this module does the same for what we do not declare: typer's own
``--help`` and the arguments. :class:`Group` is the root command's class (``typer.Typer(cls=
Group)``): when typer builds it, with every subcommand already built, it walks the tree once
and gives each command and argument a subclass that differs only there (no state added, so
the swap of ``__class__`` is safe).
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperArgument, TyperCommand, TyperGroup


class _Argument(TyperArgument):
    def display_type_rich(self, ctx: Any) -> str | None:
        # the name column shows the metavar already; an argument without one keeps its type
        return None if self.metavar is not None else super().display_type_rich(ctx)


def _tidy_help_option(option: Any) -> Any:
    if option is not None:
        option.metavar = ""  # a flag: no <bool> beside it
    return option


class _Command(TyperCommand):
    def get_help_option(self, ctx: Any) -> Any:
        return _tidy_help_option(super().get_help_option(ctx))


class _SubGroup(TyperGroup):
    def get_help_option(self, ctx: Any) -> Any:
        return _tidy_help_option(super().get_help_option(ctx))


class Group(_SubGroup):
    """The ``ritornello`` command: tidies the help of every command under it, once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _tidy(self)


def _tidy(command: Any) -> None:
    for param in command.params:
        if type(param) is TyperArgument:
            param.__class__ = _Argument
    if type(command) is TyperCommand:
        command.__class__ = _Command
    elif type(command) is TyperGroup:
        command.__class__ = _SubGroup
    # typer's commands are its vendored click's (typer._click), hence no isinstance on click
    for sub in getattr(command, "commands", {}).values():
        _tidy(sub)
