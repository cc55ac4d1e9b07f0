"""One conversation renderer: Claude's turns -> a model family's text, and a model's text -> actions.

Everything that shows a conversation to a model goes through here, so that what a model is trained
on is exactly what it is asked at eval and at serve time, and its answers are read the same way:
`cra dataset build` counts tokens with it, `cra train` tokenizes and masks with it, `cra eval`
renders prompts and parses completions with it, and so does the server.

The API (stable: dataset, train, eval, reward and serve use only these names)::

    from cra import chat

    family = chat.resolve_family(tokenizer, "auto")  # or "llama3", "qwen2.5", "qwen3", "chatml", a .jinja file
    rendered = chat.render(example, family)          # example: {"messages": [...], "tools": [...] or JSON}
    rendered.text, rendered.segments                 # segments: Segment(text, assistant) in order
    chat.tokenize(tokenizer, rendered)               # {"input_ids", "labels"}: labels -100 outside assistant text
    prompt = chat.render_prompt(messages, tools, family)  # ... ending in the generation prompt
    ids = chat.prompt_ids(tokenizer, messages, tools, family)  # the same, tokenized as training does
    action = chat.parse_action(completion)           # any family's syntax
    action.text, action.thinking, action.calls       # calls: ParsedCall(name, arguments dict, raw, error)
    action.ok, action.reason                         # parsed ok? else the first problem, in words
    chat.check_call(call, chat.tool_schemas(tools))  # parseable, known tool, valid arguments
    chat.compact_tools(tools)                        # schemas without long descriptions (--tools compact)

Conversations are the dataset's rows (cra/dataset/build.py): OpenAI-style messages, an assistant
message with `content`, `reasoning` (Claude's thinking) and `tool_calls`, results as `tool` messages
tied to their calls by `tool_call_id`. `Conversation.from_example(example, thinking="omit")` leaves
reasoning out. Bad input raises `cra.errors.InputFormatError` naming what is wrong.

Families (families.py) render what their own templates render, and extend their syntax where the
template would drop or refuse what Claude did (parallel calls, text before calls, thinking); the
module docstring of families.py says how. Any other model renders with its own Jinja template
(`TemplateFamily`).

Pure standard library at import (transformers only inside `TemplateFamily`): `cra --help` stays fast.
"""

from .conversation import Call, Conversation, Message, tools_list
from .families import FAMILIES, THINK_CLOSE, THINK_OPEN, Family, Rendered, Segment, TemplateFamily, detect
from .render import (
    count_tokens,
    family_names,
    prompt_ids,
    render,
    render_prompt,
    resolve_family,
    tokenize,
    tokenize_example,
)
from .schemas import compact_tools
from .templates import CHATML_TEMPLATE, has_generation_markers
from .toolcalls import (
    CallValidity,
    ParsedAction,
    ParsedCall,
    action_from_message,
    argument_problems,
    argument_similarity,
    arguments_equal,
    check_call,
    parse_action,
    split_thinking,
    tool_schemas,
)

__all__ = [
    "CHATML_TEMPLATE",
    "FAMILIES",
    "THINK_CLOSE",
    "THINK_OPEN",
    "Call",
    "CallValidity",
    "Conversation",
    "Family",
    "Message",
    "ParsedAction",
    "ParsedCall",
    "Rendered",
    "Segment",
    "TemplateFamily",
    "action_from_message",
    "argument_problems",
    "argument_similarity",
    "arguments_equal",
    "check_call",
    "compact_tools",
    "count_tokens",
    "detect",
    "family_names",
    "has_generation_markers",
    "parse_action",
    "prompt_ids",
    "render",
    "render_prompt",
    "resolve_family",
    "split_thinking",
    "tokenize",
    "tokenize_example",
    "tool_schemas",
    "tools_list",
]
