"""Filling a cra database by hand with sessions, turns, messages and tool calls (the schema contract
of the transcripts stage), for the dataset and pairs tests."""

import hashlib
import itertools
import json

from cra.db import open_db

_uuid = itertools.count(1)
_seq = itertools.count(1)


def answer(words=60, topic="the change"):
    base = (
        f"I looked at {topic} carefully, read the relevant files, ran the tests and checked the output. "
        "Everything is consistent now and the behaviour matches what you asked for in the request. "
    ).split()
    return " ".join((base * (words // len(base) + 1))[:words])


class Session:
    """One session. `turn()` adds a turn made of steps: each step is (text, [calls], thinking) where a
    call is (name, input dict, result text, status)."""

    def __init__(self, db, session_id, cwd="/home/user/proj", tools=None, system=None):
        self.db, self.id, self.cwd = db, session_id, cwd
        self.turns = 0
        db["sessions"].insert({"id": session_id, "cwd": cwd, "project_dir": cwd}, replace=True)
        if tools is not None or system is not None:
            tools_json = json.dumps(tools) if tools is not None else None
            # Through the api_shapes view (its INSTEAD OF trigger), named by content as the client does.
            shape_hash = hashlib.sha256(repr((system, tools_json)).encode()).hexdigest()
            db.execute(
                "INSERT INTO api_shapes (session_id, shape_hash, system, tools, timestamp) VALUES (?,?,?,?,?)",
                [session_id, shape_hash, system, tools_json, "2026-01-01T00:00:00Z"],
            )

    def turn(self, prompt, steps, final, outcome="completed", agent_id=None, is_synthetic=0):
        db = self.db
        index = self.turns
        self.turns += 1
        n_calls = sum(len(s[1]) for s in steps)
        turn_id = (
            db["turns"]
            .insert(
                {
                    "session_id": self.id,
                    "agent_id": agent_id,
                    "turn_index": index,
                    "prompt_text": prompt,
                    "final_answer": final,
                    "tool_call_count": n_calls,
                    "outcome": outcome,
                    "is_synthetic": is_synthetic,
                }
            )
            .last_pk
        )
        entry = itertools.count()

        def msg(role, content, api=None, **extra):
            row = {
                "uuid": f"u{next(_uuid)}",
                "session_id": self.id,
                "agent_id": agent_id,
                "role": role,
                "entry_seq": next(entry),
                "content": json.dumps(content),
                "api_message_id": api,
                "turn_id": turn_id,
                "cwd": self.cwd,
                **extra,
            }
            db["messages"].insert(row)
            return row["uuid"]

        msg("user", [{"type": "text", "text": prompt}])
        for k, step in enumerate(steps):
            text, calls = step[0], step[1]
            thinking = step[2] if len(step) > 2 else None
            api = f"msg_{turn_id}_{k}"
            if thinking:
                msg("assistant", [{"type": "thinking", "thinking": thinking, "signature": "sig"}], api)
            if text:
                msg("assistant", [{"type": "text", "text": text}], api)
            ids = []
            for name, inp, _, _ in calls:
                cid = f"toolu_{next(_uuid)}"
                ids.append(cid)
                mu = msg("assistant", [{"type": "tool_use", "id": cid, "name": name, "input": inp}], api)
                db["tool_calls"].insert(
                    {
                        "tool_use_id": cid,
                        "session_id": self.id,
                        "tool_name": name,
                        "tool_input": json.dumps(inp),
                        "status": calls[ids.index(cid)][3],
                        "seq": next(_seq),
                        "turn_id": turn_id,
                        "message_uuid": mu,
                        "source": "transcript",
                    }
                )
            for cid, (_, _, result, status) in zip(ids, calls):
                msg(
                    "user",
                    [{"type": "tool_result", "tool_use_id": cid, "content": result, "is_error": status != "success"}],
                )
        if final:
            msg("assistant", [{"type": "text", "text": final}], f"msg_{turn_id}_final")
        return turn_id


def good_steps(tag="x"):
    """Three successful calls over two steps (one parallel), with thinking on the first."""
    return [
        (
            "Let me look around.",
            [
                ("Bash", {"command": f"ls {tag}"}, f"a.py\nb.py ({tag})", "success"),
                ("Grep", {"pattern": "def main", "path": "/home/user/proj"}, "a.py:1:def main():", "success"),
            ],
            "I should list files and grep in parallel.",
        ),
        (
            "Reading the main file.",
            [("Read", {"file_path": "/home/user/proj/a.py"}, "1\tdef main():\n2\t    pass", "success")],
        ),
    ]


def new_db(path):
    return open_db(str(path))
