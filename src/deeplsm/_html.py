"""HTML pages from Jinja2 templates (``deeplsm/report/templates``), always autoescaped.

Every string from the user (score names, subject and image IDs, paths) reaches a page as text,
never as markup. Trusted fragments built in Python use :class:`markupsafe.Markup` with
``Markup(...).format(...)``, which escapes its arguments.
"""

from __future__ import annotations

import base64
import functools

import jinja2
from markupsafe import Markup

__all__ = ["Markup", "img_src", "render"]


@functools.lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("deeplsm", "report/templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(template: str, **context) -> str:
    """Render the package template ``template`` with ``context``, escaping every value."""
    return _env().get_template(template).render(**context)


def img_src(png: bytes) -> str:
    """A ``data:`` URL for an embedded PNG."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
