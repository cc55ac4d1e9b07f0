"""`cra serve`: the trained model behind the Anthropic Messages API, for Claude Code, with a gradual
rollout (a share of sessions, sticky; fallback; shadow comparisons) and a row per request.

render (the request as the model was trained on it, and its answer read back) -> model (llama.cpp or
hf, generating in a worker thread) -> answer / protocol (events and messages) -> app (routes and
routing) -> store (serve_servers, serve_requests). Starlette and uvicorn load only with the command.
"""
