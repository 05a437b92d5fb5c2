"""HTML rendering escapes attacker-controlled text; JSON handles numpy and NaN."""

import json

import numpy as np

from distilltrace.report import render_html, to_jsonable, write_json


def test_base_template_escapes_text(tmp_path):
    from distilltrace.report.render import _env

    tpl = _env.from_string("{% extends 'base.html' %}{% block body %}{{ text }}{% endblock %}")
    html = tpl.render(text='<script>alert(1)</script><img src=x onerror="x()">', version="t")
    assert "<script>alert" not in html
    assert "&lt;script&gt;" in html
    assert "<img src=x" not in html


def test_write_json_converts_numpy_and_nonfinite(tmp_path):
    path = write_json(
        {"a": np.float64(1.5), "b": np.arange(3), "c": float("nan")}, tmp_path / "x.json"
    )
    assert json.loads(path.read_text()) == {"a": 1.5, "b": [0, 1, 2], "c": None}
    assert to_jsonable((1, 2)) == [1, 2]


def test_render_html_writes_self_contained_page(tmp_path):
    out = render_html("base.html", {}, tmp_path / "r.html")
    text = out.read_text()
    assert text.startswith("<!doctype html>")
    assert "Content-Security-Policy" in text


def test_pval_shows_the_floor_as_a_bound():
    from distilltrace.report.render import _env, pval
    from distilltrace.stats import PVALUE_FLOOR, floored

    assert floored(0.0) == PVALUE_FLOOR and floored(2.0) == 1.0 and floored(0.03) == 0.03
    assert pval(PVALUE_FLOOR) == "<= 1e-300" and pval(floored(0.0)) == "<= 1e-300"
    assert pval(2.75e-7) == "2.75e-07" and pval(1.0) == "1" and pval(None) == "n/a"
    assert _env.from_string("{{ p | pval }}").render(p=1e-300) == "&lt;= 1e-300"
