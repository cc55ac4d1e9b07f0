"""The blind A/B pack: can people tell Claude's next action from the model's?

`make_pack` writes one self-contained HTML page (no network, no external files): for each sampled
step, the context and two next actions, Claude's and the model's, in random order, rendered the same
way (text, then tool calls) so that formatting gives nothing away. Which side is Claude's is kept in
the database (`eval_packs.answer_key`), never in the page. People choose the side they believe is
Claude's and export their choices as a JSON file from the page; `record_judgements` reads it back.

The indistinguishability rate is the share of judgements in which the person took the model's
action for Claude's: 50% when they cannot tell at all, the original design's target is > 45%.
"""

from __future__ import annotations

import html
import json
import random
import secrets
from pathlib import Path
from typing import Any

from ..chat import toolcalls
from ..errors import InputFormatError, NotFoundError
from . import store
from .intervals import wilson

CONTEXT_MESSAGES = 6  # the last messages of the context shown (the prompt is always shown)
MAX_CHARS = 1500  # per shown message or tool result


def _clip(text: str, limit: int = MAX_CHARS) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 40] + f"\n[... {len(text) - limit + 40} more characters]"


def render_action(action: toolcalls.ParsedAction) -> str:
    """One way to show any action, Claude's or the model's: its text, then one line per tool call."""
    parts = [action.text] if action.text else []
    for call in action.calls:
        if call.arguments is None:
            parts.append(f"[tool call] {call.raw}")
        else:
            parts.append(f"[tool call] {call.name} {json.dumps(call.arguments, ensure_ascii=False, indent=1)}")
    return _clip("\n".join(parts).strip() or "(nothing)", 4000)


def render_context(context: list[dict]) -> list[dict[str, str]]:
    shown = [m for m in context if m.get("role") != "system"]
    prompt_at = max((i for i, m in enumerate(shown) if m.get("role") == "user"), default=0)
    tail = shown[max(prompt_at + 1, len(shown) - CONTEXT_MESSAGES) :]
    out = []
    for m in ([shown[prompt_at]] if shown else []) + tail:
        role = m.get("role", "?")
        if role == "assistant":
            text = render_action(toolcalls.action_from_message(m))
        else:
            text = _clip(m.get("content") or "")
        out.append({"role": "tool result" if role == "tool" else role, "text": text})
    if len(shown) > len(out):
        out.insert(1, {"role": "...", "text": f"{len(shown) - len(out)} earlier messages not shown"})
    return out


def make_pack(db, eval_row: dict[str, Any], out: Path, *, items: int = 40, seed: int | None = None) -> dict[str, Any]:
    steps = store.read_steps(eval_row["steps_hash"])
    predictions = store.read_predictions(eval_row)
    rng = random.Random(seed if seed is not None else secrets.randbits(32))
    chosen = predictions if len(predictions) <= items else rng.sample(predictions, items)
    pack_id = secrets.token_hex(6)
    key, identical, page_items = {}, [], []
    for n, p in enumerate(chosen):
        step = steps.get(p["step_id"])
        if step is None:
            continue
        claude = render_action(toolcalls.action_from_message(step.target))
        model = render_action(toolcalls.parse_action(p["prediction"]))
        item_id = f"{n + 1:03d}-{secrets.token_hex(3)}"
        claude_side = rng.choice("AB")
        key[item_id] = claude_side
        if claude == model:
            identical.append(item_id)
        a, b = (claude, model) if claude_side == "A" else (model, claude)
        page_items.append({"id": item_id, "context": render_context(step.context), "A": a, "B": b})
    if not page_items:
        raise NotFoundError(f"eval {eval_row['id']} has no steps to show")
    from ..redact import Redactor

    page_items = Redactor().redact_obj(page_items)  # a page people pass around: nothing secret in it
    out = Path(out).expanduser().resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page_html(pack_id, page_items), encoding="utf-8")
    with db.conn:
        db.conn.execute(
            "INSERT INTO eval_packs (id, eval_id, path, answer_key, identical, items, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                pack_id,
                eval_row["id"],
                str(out),
                json.dumps(key),
                json.dumps(identical),
                len(page_items),
                store.now_iso(),
            ),
        )
    return {"pack_id": pack_id, "path": str(out), "items": len(page_items), "identical": len(identical)}


def _json_for_script(obj) -> str:
    # Inside <script>, "</" would end the element early: escape it (and friends) in JSON strings.
    return json.dumps(obj, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page_html(pack_id: str, items: list[dict[str, Any]]) -> str:
    data = _json_for_script({"pack_id": pack_id, "items": items})
    return _PAGE.replace("__PACK_ID__", html.escape(pack_id)).replace("__DATA__", data)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>cra blind A/B pack __PACK_ID__</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
.item{border:1px solid #ccc;border-radius:8px;padding:1em;margin:1.5em 0}
.msg{margin:.3em 0;padding:.4em .6em;background:#f6f6f6;border-radius:4px;white-space:pre-wrap;
  font-family:ui-monospace,monospace;font-size:13px}
.role{font-weight:600;font-family:system-ui,sans-serif;color:#555}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:1em;margin-top:.8em}
.side{border:2px solid #ddd;border-radius:6px;padding:.6em}
.side.picked{border-color:#2a7}
.side pre{white-space:pre-wrap;font-size:13px;margin:.4em 0}
button{font-size:14px;padding:.4em .9em;margin-right:.5em}
#bar{position:sticky;top:0;background:#fff;padding:.6em 0;border-bottom:1px solid #ddd}
</style></head><body>
<h1>Which next action is Claude's?</h1>
<p>Each item shows a coding session up to a point, then two possible next actions: one is what Claude
actually did, the other what a locally trained model did, in random order. Pick the one you believe is
Claude's. When done, export your choices and hand the file to <code>cra eval judge FILE</code>.</p>
<div id="bar">Your name: <input id="judge" placeholder="name"> <span id="count"></span>
<button id="export">Export judgements</button></div>
<div id="items"></div>
<script id="pack-data" type="application/json">__DATA__</script>
<script>
(function(){
  var data = JSON.parse(document.getElementById('pack-data').textContent);
  var storeKey = 'cra-pack-' + data.pack_id;
  var saved = JSON.parse(localStorage.getItem(storeKey) || '{"judge":"","choices":{}}');
  var judge = document.getElementById('judge');
  judge.value = saved.judge || '';
  judge.oninput = function(){ saved.judge = judge.value; persist(); };
  function persist(){ localStorage.setItem(storeKey, JSON.stringify(saved)); count(); }
  function count(){ document.getElementById('count').textContent =
      Object.keys(saved.choices).length + ' / ' + data.items.length + ' judged'; }
  function el(tag, cls, text){ var e = document.createElement(tag); if (cls) e.className = cls;
      if (text !== undefined) e.textContent = text; return e; }
  var root = document.getElementById('items');
  data.items.forEach(function(item, n){
    var box = el('div', 'item');
    box.appendChild(el('h3', null, 'Item ' + (n + 1)));
    item.context.forEach(function(m){
      var d = el('div', 'msg'); d.appendChild(el('div', 'role', m.role));
      d.appendChild(document.createTextNode(m.text));
      box.appendChild(d);
    });
    var pair = el('div', 'pair'); var sides = {};
    ['A', 'B'].forEach(function(side){
      var s = el('div', 'side'); s.appendChild(el('strong', null, 'Next action ' + side));
      s.appendChild(el('pre', null, item[side]));
      var b = el('button', null, side + ' is Claude');
      b.onclick = function(){ saved.choices[item.id] = side; persist(); mark(); };
      s.appendChild(b); pair.appendChild(s); sides[side] = s;
    });
    function mark(){
      ['A', 'B'].forEach(function(x){ sides[x].classList.toggle('picked', saved.choices[item.id] === x); });
    }
    mark(); box.appendChild(pair); root.appendChild(box);
  });
  count();
  document.getElementById('export').onclick = function(){
    if (!saved.judge) { alert('Type your name first.'); judge.focus(); return; }
    var out = {pack_id: data.pack_id, judge: saved.judge, choices: saved.choices};
    var blob = new Blob([JSON.stringify(out, null, 1)], {type: 'application/json'});
    var a = document.createElement('a'); a.href = URL.createObjectURL(blob);
    a.download = 'judgements-' + data.pack_id + '-' + saved.judge.replace(/[^A-Za-z0-9_-]/g, '_') + '.json';
    document.body.appendChild(a); a.click(); a.remove();
  };
})();
</script></body></html>
"""


def record_judgements(db, path: Path) -> dict[str, Any]:
    """Store a judgements file exported from a pack page; return the pack's indistinguishability so far."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise NotFoundError(f"cannot read {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise InputFormatError(f"{path} is not JSON: export it again from the pack page ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("choices"), dict) or not data.get("pack_id"):
        raise InputFormatError(
            f"{path} is not a judgements file (it needs pack_id and choices): export it from the pack page"
        )
    rows = list(db.query("SELECT * FROM eval_packs WHERE id = ?", [data["pack_id"]]))
    if not rows:
        raise NotFoundError(
            f"pack {data['pack_id']} is not in this database: judge it against the database that made it (-d)"
        )
    pack = rows[0]
    key, identical = json.loads(pack["answer_key"]), set(json.loads(pack["identical"]))
    judge = str(data.get("judge") or "anonymous")
    unknown = [i for i in data["choices"] if i not in key]
    bad = [c for c in data["choices"].values() if c not in ("A", "B")]
    if unknown or bad:
        raise InputFormatError(
            f"{path} does not match pack {pack['id']}: "
            + (f"unknown items {unknown[:3]}" if unknown else f"choices {bad[:3]} are not A or B")
        )
    with db.conn:
        for item_id, choice in data["choices"].items():
            db.conn.execute(
                "INSERT INTO eval_judgements (pack_id, judge, item_id, choice, fooled, identical, source, recorded_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pack_id, judge, item_id) DO UPDATE SET "
                "choice = excluded.choice, fooled = excluded.fooled, source = excluded.source,"
                " recorded_at = excluded.recorded_at",
                (
                    pack["id"],
                    judge,
                    item_id,
                    choice,
                    int(choice != key[item_id]),
                    int(item_id in identical),
                    str(Path(path).resolve()),
                    store.now_iso(),
                ),
            )
    return {
        "pack_id": pack["id"],
        "eval_id": pack["eval_id"],
        "judge": judge,
        "recorded": len(data["choices"]),
        **indistinguishability(db, pack["id"]),
    }


def indistinguishability(db, pack_id: str) -> dict[str, Any]:
    rows = list(db.query("SELECT judge, fooled, identical FROM eval_judgements WHERE pack_id = ?", [pack_id]))
    distinct = [r for r in rows if not r["identical"]]
    return {
        "judges": len({r["judge"] for r in rows}),
        "all": wilson(sum(r["fooled"] for r in rows), len(rows)).as_dict(),
        "differing": wilson(sum(r["fooled"] for r in distinct), len(distinct)).as_dict(),
    }
