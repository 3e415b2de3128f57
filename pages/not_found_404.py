"""404 page for unknown paths."""

import dash

from components.i18n import t
from components.notfound import not_found_page
from components.state import language

dash.register_page(__name__, path="/404", title="页面不存在 · Not found")


def layout(lang: str | None = None, **_other: str):
    """Not found, in the URL's language."""
    lang = language(lang)
    return not_found_page(lang, t("notfound.page", lang))
