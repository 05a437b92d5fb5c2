"""Turn result objects into JSON and self-contained, escaped HTML pages."""

from distilltrace.report.render import figure_data_uri, render_html, to_jsonable, write_json

__all__ = ["figure_data_uri", "render_html", "to_jsonable", "write_json"]
