"""An Ollama Modelfile for an exported model, and `ollama create`.

Ollama does not run the Jinja chat template embedded in the GGUF: a Modelfile's TEMPLATE is a Go
template. cra writes the Go form of the chat templates it knows (cra's own ChatML, the Qwen2.5-style
ChatML, Llama 3), each rendering the same prompt text as the Jinja template for a conversation with
tools, plus `stop` parameters for the template's end-of-turn tokens. Any other template: pass
`--template FILE` with your own Go template.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .model_files import ExportError

# cra's ChatML (cra/train/templates.py CHATML_TEMPLATE) in Go: the same system/tools block, the same
# <tool_call> JSON, consecutive tool results in one user turn.
CRA_CHATML = """\
{{- if or .System .Tools }}<|im_start|>system
{{ if .System }}{{ .System }}{{ if .Tools }}

{{ end }}{{ end }}
{{- if .Tools }}# Tools

You may call one or more functions. Function signatures:
<tools>
{{- range .Tools }}
{{ . }}
{{- end }}
</tools>

For each call, return <tool_call>{"name": ..., "arguments": ...}</tool_call>.
{{- end }}<|im_end|>
{{ end }}
{{- $prev := "" }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ .Content }}
{{- $content := .Content }}
{{- range $j, $call := .ToolCalls }}
{{- if or $content $j }}
{{ end }}<tool_call>
{"name": "{{ $call.Function.Name }}", "arguments": {{ $call.Function.Arguments }}}
</tool_call>
{{- end }}
{{- if not $last }}<|im_end|>
{{ end }}
{{- else if eq .Role "tool" }}
{{- if ne $prev "tool" }}<|im_start|>user{{ end }}
<tool_response>
{{ .Content }}
</tool_response>
{{- if or $last (ne (index (slice $.Messages $i) 1).Role "tool") }}<|im_end|>
{{ end }}
{{- end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- $prev = .Role }}
{{- end }}"""

# Qwen2.5's template as Ollama's library ships it.
QWEN_CHATML = """\
{{- if .Messages }}
{{- if or .System .Tools }}<|im_start|>system
{{- if .System }}
{{ .System }}
{{- end }}
{{- if .Tools }}

# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{{- range .Tools }}
{"type": "function", "function": {{ .Function }}}
{{- end }}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call>
{{- end }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ if .Content }}{{ .Content }}
{{- else if .ToolCalls }}<tool_call>
{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{ end }}</tool_call>
{{- end }}{{ if not $last }}<|im_end|>
{{ end }}
{{- else if eq .Role "tool" }}<|im_start|>user
<tool_response>
{{ .Content }}
</tool_response><|im_end|>
{{ end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- end }}
{{- else }}
{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{ if .Prompt }}<|im_start|>user
{{ .Prompt }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ end }}{{ .Response }}{{ if .Response }}<|im_end|>{{ end }}"""

# Llama 3.1's template as Ollama's library ships it.
LLAMA3 = """\
{{- if or .System .Tools }}<|start_header_id|>system<|end_header_id|>
{{- if .System }}

{{ .System }}
{{- end }}
{{- if .Tools }}

Cutting Knowledge Date: December 2023

When you receive a tool call response, use the output to format an answer to the orginal user question.

You are a helpful assistant with tool calling capabilities.
{{- end }}<|eot_id|>
{{- end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|start_header_id|>user<|end_header_id|>
{{- if and $.Tools $last }}

Given the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.

Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}. Do not use variables.

{{ range $.Tools }}
{{- . }}
{{ end }}
{{ .Content }}<|eot_id|>
{{- else }}

{{ .Content }}<|eot_id|>
{{- end }}{{ if $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- else if eq .Role "assistant" }}<|start_header_id|>assistant<|end_header_id|>
{{- if .ToolCalls }}
{{ range .ToolCalls }}
{"name": "{{ .Function.Name }}", "parameters": {{ .Function.Arguments }}}{{ end }}
{{- else }}

{{ .Content }}
{{- end }}{{ if not $last }}<|eot_id|>{{ end }}
{{- else if eq .Role "tool" }}<|start_header_id|>ipython<|end_header_id|>

{{ .Content }}<|eot_id|>{{ if $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- end }}
{{- end }}"""  # noqa: E501  (Ollama's template, verbatim: its long lines are prompt text)


@dataclass
class OllamaTemplate:
    family: str
    template: str
    stops: list[str]


def template_for(chat_template: str | None) -> OllamaTemplate:
    """The Go template matching a model's Jinja chat template, or an ExportError that says what to do."""
    text = chat_template or ""
    if "<|im_start|>" in text:
        if "Function signatures:" in text:
            return OllamaTemplate("cra-chatml", CRA_CHATML, ["<|im_start|>", "<|im_end|>"])
        return OllamaTemplate("qwen-chatml", QWEN_CHATML, ["<|im_start|>", "<|im_end|>"])
    if "<|start_header_id|>" in text:
        return OllamaTemplate("llama3", LLAMA3, ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"])
    what = "has no chat template" if not text else "uses a chat template cra has no Ollama form for"
    raise ExportError(
        f"the model {what} (cra knows ChatML and Llama 3): write the Go template Ollama should use and pass it "
        "with --template FILE (see https://github.com/ollama/ollama/blob/main/docs/template.md)"
    )


def _quote(value: str) -> str:
    if '"""' in value:
        raise ExportError('a TEMPLATE cannot contain """ (the Modelfile quoting)')
    return f'"""{value}"""'


def modelfile_text(
    *, model: Path, adapter: Path | None, template: OllamaTemplate, comment: str, num_ctx: int | None = None
) -> str:
    lines = [f"# {comment}", f"FROM {model}"]
    if adapter is not None:
        lines.append(f"ADAPTER {adapter}")
    lines.append(f"TEMPLATE {_quote(template.template)}")
    lines.extend(f'PARAMETER stop "{stop}"' for stop in template.stops)
    if num_ctx:
        lines.append(f"PARAMETER num_ctx {num_ctx}")
    return "\n".join(lines) + "\n"


def create_command(name: str, modelfile: Path) -> list[str]:
    return ["ollama", "create", name, "-f", str(modelfile)]


def run_create(name: str, modelfile: Path) -> tuple[bool, str]:
    """Run `ollama create` when Ollama is installed: (ran, output). Not installed: (False, the command)."""
    command = create_command(name, modelfile)
    if shutil.which("ollama") is None:
        return False, shlex.join(command)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ExportError(
            f"`{shlex.join(command)}` failed: {exc}. Is the Ollama server running (`ollama serve`)?"
        ) from exc
    if done.returncode != 0:
        raise ExportError(
            f"`{shlex.join(command)}` failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()[-800:]}. "
            "Is the Ollama server running (`ollama serve`)?"
        )
    return True, (done.stdout + done.stderr).strip()
