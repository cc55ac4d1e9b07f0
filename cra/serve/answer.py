"""The model's text, as it is generated, turned into the events of one streamed answer.

Thinking (`<think>...</think>` at the start) and text are streamed as they come; from the first sign
of a tool call (`<tool_call>`, or a message that opens with a JSON object or Llama's python tag) the
rest is held until the end, then read whole by the same parser as a buffered answer
(render.read_completion): a call that does not read is never sent as a tool_use block, only as a note
in the text. What was streamed is always a prefix of what the buffered answer would hold.
"""

from __future__ import annotations

from . import render
from .protocol import SIGNATURE_PREFIX, EventWriter

CALL_OPENERS = ("<tool_call>", "<|python_tag|>", "{")


class AnswerStream:
    def __init__(self, writer: EventWriter, tools: list[dict] | None, thinking: bool = True):
        self.writer = writer
        self.tools = tools
        self.thinking_allowed = thinking
        self.raw = ""
        self.mode = "start"  # start -> thinking -> between -> text -> calls
        self.pos = 0  # raw[:pos] is accounted for (sent, or skipped as markup/whitespace)
        self.sent_thinking = ""
        self.sent_text = ""
        self.first_content_sent = False

    def feed(self, piece: str) -> bytes:
        self.raw += piece
        return self._advance(final=False)

    def _send_thinking(self, piece: str) -> bytes:
        if not piece:
            return b""
        self.sent_thinking += piece
        self.first_content_sent = True
        return self.writer.thinking(piece) if self.thinking_allowed else b""

    def _send_text(self, piece: str) -> bytes:
        if not piece:
            return b""
        self.sent_text += piece
        self.first_content_sent = True
        return self.writer.text(piece)

    def _advance(self, final: bool) -> bytes:
        out = b""
        while True:
            rest = self.raw[self.pos :]
            if self.mode == "start":
                stripped = rest.lstrip()
                if not stripped or (not final and render.THINK_OPEN.startswith(stripped)):
                    return out
                if stripped.startswith(render.THINK_OPEN):
                    self.pos += len(rest) - len(stripped) + len(render.THINK_OPEN)
                    self.mode = "thinking"
                else:
                    self.mode = "between"
            elif self.mode == "thinking":
                end = rest.find(render.THINK_CLOSE)
                body = rest if end < 0 else rest[:end]
                if not self.sent_thinking:
                    skipped = len(body) - len(body.lstrip())
                    self.pos += skipped
                    body = body[skipped:]
                if end < 0 and not final:
                    # Whitespace goes out only once more text follows it (the block is stripped at the end).
                    piece = body[: len(body) - held_back(body, (render.THINK_CLOSE,))].rstrip()
                    self.pos += len(piece)
                    return out + self._send_thinking(piece)
                piece = body.rstrip()
                out += self._send_thinking(piece)
                if self.sent_thinking and self.thinking_allowed:
                    out += self.writer.signature(SIGNATURE_PREFIX + "local") + self.writer.close()
                self.pos += len(body) + (len(render.THINK_CLOSE) if end >= 0 else 0)
                self.mode = "between"
            elif self.mode == "between":
                stripped = rest.lstrip()
                self.pos += len(rest) - len(stripped)
                if not stripped:
                    return out
                if stripped.startswith(CALL_OPENERS):
                    self.mode = "calls"
                    return out
                if not final and any(o.startswith(stripped) for o in CALL_OPENERS):
                    return out
                self.mode = "text"
            elif self.mode == "text":
                at = rest.find(CALL_OPENERS[0])
                if at >= 0 or final:
                    body = rest[:at] if at >= 0 else rest
                    out += self._send_text(body.rstrip())
                    self.pos += len(body)
                    self.mode = "calls"
                    return out
                piece = rest[: len(rest) - held_back(rest, (CALL_OPENERS[0],))].rstrip()
                self.pos += len(piece)
                return out + self._send_text(piece)
            else:  # calls: held until the end
                return out

    def finish(self, stop_reason: str, output_tokens: int) -> tuple[bytes, render.Reading, str]:
        """The remaining events through message_stop; the answer as read; its stop reason."""
        out = self._advance(final=True)
        reading = render.read_completion(self.raw, self.tools)
        if not self.thinking_allowed:
            reading.thinking = None
        # What the whole text reads as, less what is already out (the streamed part is its prefix).
        if reading.text.startswith(self.sent_text):
            remainder = reading.text[len(self.sent_text) :]
        else:  # cannot happen for text the parser keeps verbatim; never lose the answer
            remainder = "\n\n" + reading.text if self.sent_text else reading.text
        if self.writer.open_kind == "text" or not self.sent_text:
            out += self._send_text(remainder.lstrip() if not self.sent_text else remainder)
        elif remainder.strip():
            out += self.writer.close() + self._send_text(remainder.strip())
        for block in reading.tool_uses:
            out += self.writer.tool_use(block)
        if reading.tool_uses and stop_reason == "end_turn":
            stop_reason = "tool_use"
        out += self.writer.finish(stop_reason, output_tokens)
        return out, reading, stop_reason


def held_back(text: str, markers: tuple[str, ...]) -> int:
    """How many characters at the end of `text` could be the start of one of `markers`: held until
    the next piece says whether the marker follows."""
    longest = 0
    for marker in markers:
        for n in range(min(len(marker) - 1, len(text)), longest, -1):
            if text.endswith(marker[:n]):
                longest = n
                break
    return longest
