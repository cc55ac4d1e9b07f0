"""Redaction of secrets and personal paths from everything a dataset writes.

Claude Code stores whatever was typed or read verbatim (keys pasted into prompts, `.env` files
printed by `cat`, tokens in `curl` headers), so a dataset built from sessions is a leak waiting to
happen. Every string that goes into a written example passes through `Redactor.redact`.

Two kinds of rules:
- token patterns: provider keys with a recognisable shape (AWS, GitHub, OpenAI, Anthropic, Slack,
  Stripe, Google, Hugging Face, GitLab, npm, PyPI, SendGrid, JWTs, PEM private keys), replaced
  wherever they appear;
- context rules: a value is secret because of what names it (`DB_PASSWORD=...`, `"api_key": "..."`,
  `Authorization: Bearer ...`, `postgres://user:pass@host`, `--password x`). These are written to
  leave ordinary code alone: `password_field = "password"`, `token = get_token()`,
  `password: str = None` and `MAX_TOKENS=4096` are not secrets.

A replacement reads `[REDACTED:<kind>]`, so a model trained on the data sees that something was
there, and the dataset card can say how much of what was removed.
"""

from __future__ import annotations

import os
import re
from collections import Counter

MARK = "[REDACTED:%s]"

# Shaped tokens: (kind, pattern). Order matters where shapes overlap (Anthropic before OpenAI).
_TOKEN_PATTERNS = [
    (
        "private_key",
        # A whole PEM block; an unterminated one (a truncated `cat`) is redacted to the end.
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?:.|\n)*?"
        r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    ),
    ("anthropic_key", r"\bsk-ant-(?:api|admin|sid|oat)\d{2}-[A-Za-z0-9_\-]{20,}"),
    ("openai_key", r"\bsk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{20,}"),
    ("aws_access_key_id", r"\b(?:AKIA|ASIA|ABIA|ACCA|AROA|AIDA)[0-9A-Z]{16}\b"),
    ("github_token", r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b"),
    ("github_token", r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b"),
    ("gitlab_token", r"\bglpat-[A-Za-z0-9_\-]{20,}\b"),
    ("slack_token", r"\bxox[abposre]-(?:\d+-)?[A-Za-z0-9\-]{10,}"),
    ("slack_webhook", r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9_/]{20,}"),
    ("stripe_key", r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}\b"),
    ("stripe_key", r"\bwhsec_[A-Za-z0-9]{24,}\b"),
    ("google_api_key", r"\bAIza[0-9A-Za-z_\-]{35}"),
    ("google_oauth", r"\bya29\.[0-9A-Za-z_\-]{20,}"),
    ("google_oauth", r"\bGOCSPX-[0-9A-Za-z_\-]{20,}"),
    ("huggingface_token", r"\bhf_[A-Za-z0-9]{30,}\b"),
    ("npm_token", r"\bnpm_[A-Za-z0-9]{36}\b"),
    ("pypi_token", r"\bpypi-AgE[A-Za-z0-9_\-]{50,}"),
    ("sendgrid_key", r"\bSG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}\b"),
    ("digitalocean_token", r"\bdo[opr]_v1_[a-f0-9]{64}\b"),
    ("shopify_token", r"\bshp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}\b"),
    ("jwt", r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
]

# Words that make a name secret when they are one of its parts (DB_PASSWORD, clientSecret, api-key).
_SECRET_PARTS = {
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "pass",
    "secret",
    "secrets",
    "token",
    "tokens",
    "apikey",
    "credential",
    "credentials",
    "privatekey",
    "accesskey",
    "secretkey",
    "authkey",
    "sessionkey",
    "encryptionkey",
    "signingkey",
    "masterkey",
    "clientsecret",
    "dsn",
}
_SECRET_PAIRS = {
    ("api", "key"),
    ("access", "key"),
    ("private", "key"),
    ("secret", "key"),
    ("auth", "key"),
    ("session", "key"),
    ("encryption", "key"),
    ("signing", "key"),
    ("master", "key"),
    ("client", "secret"),
    ("auth", "token"),
    ("license", "key"),
}
# ...unless another part says the value is about the secret, not the secret (TOKEN_URL, max_tokens).
_NOT_SECRET_PARTS = {
    "max",
    "min",
    "num",
    "count",
    "limit",
    "len",
    "length",
    "size",
    "ttl",
    "expiry",
    "expires",
    "timeout",
    "type",
    "name",
    "field",
    "file",
    "path",
    "dir",
    "url",
    "uri",
    "endpoint",
    "header",
    "prefix",
    "env",
    "var",
    "hint",
    "label",
    "placeholder",
    "regex",
    "pattern",
    "format",
    "policy",
    "reset",
    "forgot",
    "confirm",
    "input",
    "widget",
    "prompt",
    "error",
    "message",
    "msg",
    "help",
    "id",
    "usage",
    "budget",
    "estimate",
    "cache",
    "class",
    "cls",
    "hash",
    "hashed",
    "salt",
    "rounds",
    "required",
    "enabled",
    "strength",
    "validator",
    "manager",
    "store",
    "provider",
    "source",
    "mode",
    "kind",
    "param",
    "arg",
    "key_id",
    "keyid",
    "bytes",
    "bits",
    "index",
    "idx",
    "out",
}
_PLACEHOLDER = re.compile(
    r"^(?:<[^>]*>|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?|\{\{.*\}\}|%\(.*\)s|\*+|x{3,}|X{3,}|\.\.\.|"
    r"\[REDACTED:[a-z_]+\]|(?:your|my|the)[-_ ].*|.*\.\.\.|changeme|redacted|none|null|nil|true|false|"
    r"undefined|str|int|bool|bytes|string|optional\[.*|secretstr|process\.env\..*|os\.environ.*|\$\(.*|"
    r"env\(.*|getenv\(.*)$",
    re.IGNORECASE,
)
# Starts at a word start and is bounded: unbounded, a megabyte-long token made every position a
# start and the match quadratic.
_NAME = r"(?<![A-Za-z0-9_.\-])[A-Za-z_][A-Za-z0-9_.\-]{0,63}"
# A quick test before the regex passes (substring search in C is ~100x cheaper than a regex
# alternation): a string containing none of these, lowercased, matches no rule.
_TRIGGERS = (
    "private key",
    "sk-",
    "akia",
    "asia",
    "abia",
    "acca",
    "aroa",
    "aida",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xox",
    "hooks.slack",
    "_live_",
    "_test_",
    "whsec_",
    "aiza",
    "ya29.",
    "gocspx-",
    "hf_",
    "npm_",
    "pypi-",
    "sg.",
    "_v1_",
    "shp",
    "eyj",
    "://",
    "bearer",
    "basic",
    "token",
    "auth",
    "pass",
    "pwd",
    "secret",
    "key",
    "cred",
    "dsn",
    "/home/",
    "/users/",
    "\\users\\",
    "-u ",
    "--user",
    "pin code",
)


def _name_parts(name: str) -> list[str]:
    # clientSecret -> client secret; DB_PASSWORD -> db password; api-key -> api key
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [p for p in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if p]


def is_secret_name(name: str) -> bool:
    parts = _name_parts(name)
    if not parts or any(p in _NOT_SECRET_PARTS for p in parts):
        return False
    if any(p in _SECRET_PARTS for p in parts):
        return True
    # run-together names: PGPASSWORD, authtoken, githubApitoken
    if any(p.endswith(("password", "passwd", "secret", "token", "apikey")) for p in parts):
        return True
    return any(pair in _SECRET_PAIRS for pair in zip(parts, parts[1:]))


def _looks_like_value(value: str, name: str) -> bool:
    """Is this the secret itself, rather than a reference to one or a field name?"""
    if len(value) < 3 or _PLACEHOLDER.match(value):
        return False
    # `password_field = "password"`, `TOKEN_KEY = "auth_token"`: an identifier made of secret words
    if re.fullmatch(r"[a-z_\-.]+", value) and any(
        p in _SECRET_PARTS or p in {"key", "auth", "api"} for p in _name_parts(value)
    ):
        return False
    return True


class Redactor:
    """Replace secrets in strings; `counts` says how many of each kind were replaced.

    `homes`: home directories to anonymise (default: this user's); every `/home/<name>` and
    `/Users/<name>` becomes `/home/user` / `/Users/user` too, so paths stay absolute and usable.
    """

    def __init__(self, homes: list[str] | None = None, enabled: bool = True):
        self.enabled = enabled
        self.counts: Counter[str] = Counter()
        self._tokens = [(kind, re.compile(p)) for kind, p in _TOKEN_PATTERNS]
        home_list = [os.path.expanduser("~")] if homes is None else list(homes)
        home_list = [h.rstrip("/") for h in home_list if h and h.rstrip("/") not in ("", "/root")]
        self._homes = sorted(set(home_list), key=len, reverse=True)
        self._context = [
            # KEY=value in .env files, shell exports and env prefixes (`PGPASSWORD=x psql`)
            (
                "env_secret",
                re.compile(
                    r"(?m)(?P<pre>(?:^|(?<=[\s;&|(`]))(?:export\s+|set\s+)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
                    r"\s?=\s?)(?P<q>[\"']?)(?P<val>[^\s\"'`;&|)#]+)(?P=q)"
                ),
            ),
            # name = "literal" / name: "literal" / "name": "literal" / name => 'literal' / name := "x"
            (
                "config_secret",
                re.compile(
                    r"(?P<pre>(?P<kq>[\"']?)(?P<name>" + _NAME + r")(?P=kq)\s*(?::=|=>|=|:)\s*"
                    r"(?:[rbuf]{0,2})(?P<q>[\"']))(?P<val>[^\"'\n]{1,400})(?P=q)"
                ),
            ),
            # YAML / INI / TOML without quotes: `  password: hunter2`, `password = hunter2`
            (
                "config_secret",
                re.compile(
                    r"(?m)(?P<pre>^[ \t-]*(?P<name>" + _NAME + r")[ \t]*(?::|=)[ \t]+)(?P<q>)"
                    r"(?P<val>[^\s\"'{\[&*!|>#][^\s#]*)[ \t]*$"
                ),
            ),
            # --password hunter2, --api-key=xyz, -p'secret' is too ambiguous to touch
            (
                "cli_secret",
                re.compile(
                    r"(?P<pre>--(?P<name>[A-Za-z][A-Za-z0-9\-_]*)(?:=|\s+))(?P<q>[\"']?)"
                    r"(?P<val>[^\s\"'-][^\s\"']*)(?P=q)"
                ),
            ),
        ]
        self._auth_header = re.compile(
            r"(?i)(?P<pre>\b(?:authorization|proxy-authorization)[\"']?\s*[:=]\s*[\"']?(?:bearer|basic|token|digest)\s+)"
            r"(?P<val>[A-Za-z0-9._~+/=\-]{8,})"
        )
        self._bearer = re.compile(r"(?P<pre>\b[Bb]earer\s+)(?P<val>[A-Za-z0-9._~+/\-]{16,}=*)")
        self._api_key_header = re.compile(
            r"(?i)(?P<pre>\b(?:x-api-key|api-key|x-auth-token|private-token|x-goog-api-key)\s*:\s*)"
            r"(?P<val>[A-Za-z0-9._~+/=\-]{8,})"
        )
        self._url_creds = re.compile(
            r"(?P<pre>\b[A-Za-z][A-Za-z0-9+.\-]{0,20}://(?:[^\s:/@\"']{0,128}):)(?P<val>[^\s/\"'@]{1,256}(?:@[^\s/\"'@]{1,256}){0,3})(?=@[^\s/@]+)"
        )
        # "the admin password is correcthorsebatterystaple": prose, so only values that look random
        self._prose_password = re.compile(
            r"(?i)(?P<pre>\b(?:password|passphrase|passwd|pwd|pin code|secret)\s+(?:is|was)\s+[\"'`]?)"
            r"(?P<val>[^\s\"'`,;]{6,}?)(?=[\"'`]?(?:[\s,;]|[.!?](?:\s|$)|$))"
        )
        self._curl_user = re.compile(r"(?P<pre>\s(?:-u|--user)\s+[\"']?[^\s:\"']+:)(?P<val>[^\s\"']+)")
        # Only at the start of a path: `example.com/home/page` is a URL, not a home directory.
        self._home_generic = re.compile(
            r"(?P<pre>(?<![A-Za-z0-9_.\-/:])(?:/home/|/Users/)|[A-Za-z]:\\\\?Users\\\\?)(?P<val>[A-Za-z0-9._\-]+)"
        )

    # -- public ---------------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        if not self.enabled or not text or not isinstance(text, str):
            return text
        low = text.lower()
        if not any(word in low for word in _TRIGGERS):
            return text
        for kind, pattern in self._tokens:
            text = pattern.sub(lambda _m, k=kind: self._mark(k), text)  # type: ignore[misc]  # k: str
        text = self._auth_header.sub(lambda m: m["pre"] + self._mark("auth_header"), text)
        text = self._bearer.sub(self._bearer_sub, text)
        text = self._api_key_header.sub(lambda m: m["pre"] + self._mark("auth_header"), text)
        text = self._url_creds.sub(self._url_sub, text)
        text = self._prose_password.sub(self._prose_sub, text)
        text = self._curl_user.sub(lambda m: m["pre"] + self._mark("password"), text)
        for kind, pattern in self._context:
            text = pattern.sub(lambda m, k=kind: self._context_sub(m, k), text)  # type: ignore[misc]  # k: str
        return self._redact_home(text)

    def redact_obj(self, obj):
        """Redact every string inside a JSON-like value (dict keys are names, left alone)."""
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, dict):
            out = {}
            for k, v in obj.items():
                if isinstance(v, str) and isinstance(k, str) and is_secret_name(k) and _looks_like_value(v, k):
                    # {"password": "hunter2"} as structured tool input: the key names the secret.
                    if not v.startswith("[REDACTED:"):
                        self.counts["config_secret"] += 1
                        out[k] = MARK % "config_secret"
                        continue
                out[k] = self.redact_obj(v)
            return out
        if isinstance(obj, list):
            return [self.redact_obj(v) for v in obj]
        return obj

    # -- internals ------------------------------------------------------------------------------

    def _mark(self, kind: str) -> str:
        self.counts[kind] += 1
        return MARK % kind

    def _bearer_sub(self, m):
        if m["val"].startswith("[REDACTED") or not re.search(r"\d", m["val"]):
            return m.group(0)  # "Bearer authentication scheme" is prose, not a token
        return m["pre"] + self._mark("auth_header")

    def _prose_sub(self, m):
        v = m["val"]
        random_looking = (
            re.search(r"\d", v)
            or re.search(r"[^A-Za-z]", v)
            or (v != v.lower() and v != v.upper() and v != v.capitalize())
            or len(v) >= 12
        )
        if v.startswith("[REDACTED") or _PLACEHOLDER.match(v) or not random_looking:
            return m.group(0)
        return m["pre"] + self._mark("password")

    def _url_sub(self, m):
        if m["val"].startswith("[REDACTED") or _PLACEHOLDER.match(m["val"]):
            return m.group(0)
        return m["pre"] + self._mark("connection_string")

    def _context_sub(self, m, kind):
        name, value = m["name"], m["val"]
        if value.startswith("[REDACTED") or not is_secret_name(name) or not _looks_like_value(value, name):
            return m.group(0)
        if kind == "env_secret" and not m["q"] and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*\(.*", value):
            return m.group(0)  # a call, not a value
        if (
            kind == "config_secret"
            and not m["q"]
            and (
                re.search(r"[()\[\]{}$;]", value)
                or (re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", value) and not re.search(r"\d", value))
            )
        ):
            # unquoted code (`password: str`, `token = uuid.uuid4().hex`, `password: string;`)
            return m.group(0)
        return m["pre"] + (m["q"] or "") + self._mark(kind) + (m["q"] or "")

    def _redact_home(self, text: str) -> str:
        for home in self._homes:
            if home in text:
                n = text.count(home)
                generic = "/Users/user" if home.startswith("/Users/") else "/home/user"
                if home != generic:
                    text = text.replace(home, generic)
                    self.counts["home_path"] += n

        def sub(m):
            if m["val"] in ("user", "runner", "linuxbrew") or m["val"].startswith("[REDACTED"):
                return m.group(0)
            self.counts["home_path"] += 1
            return m["pre"] + "user"

        return self._home_generic.sub(sub, text)
