"""Key files: round trip, key id, env-var secrets, bad input, and the secret never shown."""

from __future__ import annotations

import json
import logging
import pickle
import warnings

import pytest

from distilltrace.errors import InputError
from distilltrace.marks.keys import (
    DEFAULT_SECRET_ENV,
    load_watermark,
    make_watermark,
    new_secret,
    write_key_file,
)
from distilltrace.marks.schemes import SchemeParams, TokenizerMismatchError
from distilltrace.marks.secret import key_id_of


def _key(tmp_path, binding, name="k.json", secret=None, **params):
    secret = secret or new_secret()
    params.setdefault("scheme", "greenlist")  # the edit tests below change its gamma/delta
    wm = make_watermark(SchemeParams(**params), binding, secret)
    return write_key_file(tmp_path / name, wm, secret), secret, wm


def test_round_trip_and_key_id(tmp_path, byte_binding):
    path, secret, wm = _key(tmp_path, byte_binding, scheme="gumbel", context_width=3)
    loaded = load_watermark(path)
    assert loaded.key_id == wm.key_id == key_id_of(secret)
    assert loaded.params == wm.params and loaded.tokenizer == byte_binding
    assert loaded.window_seed([1, 2, 3]) == wm.window_seed([1, 2, 3])
    assert (path.stat().st_mode & 0o777) == 0o600
    with pytest.raises(InputError, match="refusing to overwrite"):
        write_key_file(path, wm, secret)


def test_secret_never_shown(tmp_path, byte_binding, byte_tok, caplog):
    caplog.set_level(logging.DEBUG)
    path, secret, wm = _key(tmp_path, byte_binding)
    hexs = secret.hex()
    wm = load_watermark(path)
    from distilltrace.marks.detect import detect_texts
    from distilltrace.marks.reporting import write_detect_report

    rep = detect_texts(wm, ["hello world, this is a test of the detector"], byte_tok, min_scored=1)
    write_detect_report(rep, ["hello"], tmp_path / "out")
    shown = [
        repr(wm),
        str(wm),
        repr(secret),
        str(secret),
        json.dumps(wm.to_dict()),
        repr(rep),
        (tmp_path / "out" / "result.json").read_text(),
        (tmp_path / "out" / "report.html").read_text(),
        caplog.text,
    ]
    for text in shown:
        assert hexs not in text and hexs.upper() not in text
    assert "hidden" in repr(secret)
    with pytest.raises(TypeError):
        pickle.dumps(wm)
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_secret_from_environment(tmp_path, byte_binding, monkeypatch):
    secret = new_secret()
    wm = make_watermark(SchemeParams(), byte_binding, secret)
    path = write_key_file(tmp_path / "env.json", wm, None, secret_env="MY_WM_SECRET")
    assert "secret" not in json.loads(path.read_text())
    monkeypatch.delenv("MY_WM_SECRET", raising=False)
    with pytest.raises(InputError, match="MY_WM_SECRET is not set"):
        load_watermark(path)
    monkeypatch.setenv("MY_WM_SECRET", secret.hex())
    assert load_watermark(path).key_id == wm.key_id
    # a file with neither reads the default variable
    d = json.loads(path.read_text())
    d.pop("secret_env")
    (tmp_path / "default.json").write_text(json.dumps(d))
    monkeypatch.setenv(DEFAULT_SECRET_ENV, secret.hex())
    assert load_watermark(tmp_path / "default.json").key_id == wm.key_id


def test_wrong_or_corrupt_keys(tmp_path, byte_binding):
    path, secret, wm = _key(tmp_path, byte_binding)
    d = json.loads(path.read_text())
    other = new_secret()
    bad = dict(d, secret=other.hex())  # the wrong secret for this key id
    (tmp_path / "wrong.json").write_text(json.dumps(bad))
    with pytest.raises(InputError, match="does not match the secret") as e:
        load_watermark(tmp_path / "wrong.json")
    assert other.hex() not in str(e.value) and secret.hex() not in str(e.value)
    (tmp_path / "nothex.json").write_text(json.dumps(dict(d, secret="zz" + secret.hex()[2:])))
    with pytest.raises(InputError, match="not valid hex") as e:
        load_watermark(tmp_path / "nothex.json")
    assert secret.hex()[2:] not in str(e.value)
    (tmp_path / "params.json").write_text(json.dumps(dict(d, params={"gamma": 2.0})))
    with pytest.raises(InputError, match="gamma"):
        load_watermark(tmp_path / "params.json")
    (tmp_path / "junk.json").write_text("{not json " + secret.hex())
    with pytest.raises(InputError, match="not valid JSON") as e:
        load_watermark(tmp_path / "junk.json")
    assert secret.hex() not in str(e.value)
    with pytest.raises(InputError, match="not a distilltrace watermark key"):
        (tmp_path / "other.json").write_text(json.dumps({"a": 1}))
        load_watermark(tmp_path / "other.json")
    with pytest.raises(InputError, match="not found"):
        load_watermark(tmp_path / "missing.json")


def test_tokenizer_mismatch(make_wm, byte_tok):
    from distilltrace.models.tiny import byte_tokenizer

    other = byte_tokenizer()
    other.add_tokens(["<extra>"])
    wm = make_wm()
    wm.check_tokenizer(byte_tok)
    with pytest.raises(TokenizerMismatchError, match="not the tokenizer key"):
        wm.check_tokenizer(other)
    from distilltrace.marks.detect import detect_texts

    with pytest.raises(TokenizerMismatchError):
        detect_texts(wm, ["some text"], other)


def test_bad_params():
    for kw in (
        {"gamma": 0.0},
        {"scheme": "greenlist", "delta": -1.0},
        {"delta": 2.0},  # not a parameter of the default (tournament) scheme
        {"context_width": 0},
        {"scheme": "x"},
        {"seeding": "selfhash-typo"},
    ):
        with pytest.raises(ValueError):
            SchemeParams(**kw)


EDITS = [
    ("params", "gamma", 0.5),
    ("params", "delta", 1.0),
    ("params", "context_width", 3),
    ("params", "seeding", "minhash"),
    ("tokenizer", "fingerprint", "261:000000000000000000000000"),
]


@pytest.mark.parametrize("block,field,value", EDITS)
def test_edited_params_or_tokenizer_are_an_integrity_error(
    tmp_path, byte_binding, block, field, value
):
    path, secret, wm = _key(tmp_path, byte_binding)
    d = json.loads(path.read_text())
    assert d[block][field] != value
    d[block][field] = value
    (tmp_path / "edited.json").write_text(json.dumps(d))
    with pytest.raises(InputError, match="integrity check failed") as e:
        load_watermark(tmp_path / "edited.json")
    assert secret.hex() not in str(e.value)


def test_edited_scheme_or_mac_is_an_integrity_error(tmp_path, byte_binding, monkeypatch):
    path, secret, wm = _key(tmp_path, byte_binding, scheme="greenlist")
    d = json.loads(path.read_text())
    gumbel = dict(
        d, scheme="gumbel", params={"scheme": "gumbel", "context_width": 2, "seeding": "lefthash"}
    )
    (tmp_path / "scheme.json").write_text(json.dumps(gumbel))
    with pytest.raises(InputError, match="integrity check failed"):
        load_watermark(tmp_path / "scheme.json")
    for mac in ("0" * 64, None):
        bad = {k: v for k, v in d.items() if k != "mac"} | ({"mac": mac} if mac else {})
        (tmp_path / "mac.json").write_text(json.dumps(bad))
        with pytest.raises(InputError, match="integrity"):
            load_watermark(tmp_path / "mac.json")
    # the same protection when the secret lives in an environment variable
    env_path = write_key_file(tmp_path / "env.json", wm, None, secret_env="WM_SECRET_T")
    monkeypatch.setenv("WM_SECRET_T", secret.hex())
    assert load_watermark(env_path).key_id == wm.key_id
    d = json.loads(env_path.read_text())
    d["params"]["gamma"] = 0.9
    (tmp_path / "env-edited.json").write_text(json.dumps(d))
    with pytest.raises(InputError, match="integrity check failed"):
        load_watermark(tmp_path / "env-edited.json")


def _legacy(tmp_path, binding, secret, **params):
    """A key file as distilltrace wrote it before key files carried a MAC."""
    params.setdefault("scheme", "greenlist")
    wm = make_watermark(SchemeParams(**params), binding, secret)
    d = {
        "format": "distilltrace-watermark-key/1",
        "key_id": wm.key_id,
        "scheme": wm.params.scheme,
        "params": wm.params.to_dict(),
        "tokenizer": binding.to_dict(),
        "created": "2024-01-01T00:00:00+00:00",
        "secret": secret.hex(),
    }
    path = tmp_path / "legacy.json"
    path.write_text(json.dumps(d))
    return path, wm


def test_legacy_key_files_load_with_a_warning(tmp_path, byte_binding):
    from distilltrace.marks.keys import KEY_FORMAT, LegacyKeyWarning, upgrade_key_file

    secret = new_secret()
    path, wm = _legacy(tmp_path, byte_binding, secret, gamma=0.3)
    with pytest.warns(LegacyKeyWarning, match="no integrity check") as rec:
        loaded = load_watermark(path)
    assert loaded.key_id == wm.key_id and loaded.params == wm.params
    assert all(secret.hex() not in str(w.message) for w in rec)
    with pytest.raises(InputError, match="no integrity check"):
        load_watermark(path, allow_legacy=False)
    # upgrading writes the current format, which then loads without a warning
    new = upgrade_key_file(path, tmp_path / "upgraded.json")
    assert json.loads(new.read_text())["format"] == KEY_FORMAT
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_watermark(new).params == wm.params


def test_new_key_files_carry_a_mac_and_load_silently(tmp_path, byte_binding):
    from distilltrace.marks.keys import KEY_FORMAT

    path, secret, wm = _key(tmp_path, byte_binding)
    d = json.loads(path.read_text())
    assert d["format"] == KEY_FORMAT and len(d["mac"]) == 64
    assert secret.hex() not in d["mac"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_watermark(path)
