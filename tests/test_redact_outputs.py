"""Every output meant to be passed on goes through redaction: `cra stats --json/--html`, the eval
pack page, export metadata; and the API other stages call (`cra.redact.redact_text`)."""

import json

from click.testing import CliRunner
from dataset_db import Session, answer, good_steps, new_db
from test_eval_metrics import PREDICTIONS
from test_eval_pack import make_run, record_eval

from cra.cli import cli
from cra.db import open_db
from cra.eval import pack
from cra.testing.secret_corpus import secrets

TOKEN = next(it for it in secrets(2) if it.kind == "github_pat_classic").value


def test_redact_text_is_the_stable_api():
    from cra.redact import MARK, Redactor, redact_obj, redact_text

    assert redact_text(f"use {TOKEN} now") == "use [REDACTED:github_token] now"
    assert redact_obj({"args": [f"--token={TOKEN}"], "n": 3}) == {"args": ["--token=[REDACTED:github_token]"], "n": 3}
    assert MARK % "x" == "[REDACTED:x]"
    r = Redactor(homes=[])
    assert [f.kind for f in r.findings(f"a {TOKEN}")] == ["github_token"] and not r.counts


def test_stats_json_and_html_carry_no_home_path(tmp_path):
    db = new_db(tmp_path / "cra.db")
    Session(db, "s1", cwd="/home/alice/secret-project").turn("Find main.", good_steps(), answer())
    html = tmp_path / "report.html"
    result = CliRunner().invoke(
        cli, ["stats", "-d", str(tmp_path / "cra.db"), "--json", "--html", str(html)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [p["project"] for p in data["projects"]] == ["/home/user/secret-project"]
    page = html.read_text()
    assert "/home/alice" not in page and "/home/alice" not in result.output
    assert "/home/user/secret-project" in page


def test_eval_pack_page_is_redacted(tmp_path):
    db = open_db()
    run = make_run(db, tmp_path, 1)
    leaky = list(PREDICTIONS)
    leaky[0] = f"I will push with {TOKEN} from /home/alice/repo"
    row = record_eval(db, run, leaky, context_note=f" (the password is Xq7!vR2p#Lm9 and {TOKEN})")
    out = tmp_path / "ab.html"
    info = pack.make_pack(db, row, out, items=40, seed=7)
    page = out.read_text()
    assert info["items"] == 6
    assert TOKEN not in page and "Xq7!vR2p#Lm9" not in page and "/home/alice" not in page
    assert "[REDACTED:github_token]" in page and "[REDACTED:password]" in page


def test_export_label_is_redacted():
    from cra.export.exporter import Source

    source = Source.__new__(Source)  # label() reads only these two attributes
    source.run = None

    class _Base:
        ref = "/home/alice/models/base"

    class _Adapter:
        class path:  # noqa: N801 - stands in for a Path
            name = f"adapter-{TOKEN}"

    source.base, source.adapter = _Base(), _Adapter()
    assert source.label() == "base + adapter-[REDACTED:github_token]"
