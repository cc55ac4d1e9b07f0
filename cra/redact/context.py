"""Secrets recognised by what surrounds them rather than by their own shape.

- Named values: one scan finds the secret-ish words (pass, secret, token, key, auth, ...); around
  each, the enclosing name is read and the syntax after it decides where the value is, in every
  notation a session shows: `.env` and shell (`KEY=v`, `export KEY=v`, `PGPASSWORD=v psql`), JSON,
  YAML, TOML, INI, HCL, properties, code (`password = "v"`, `'token' => 'v'`, `setenv("TOKEN", "v")`,
  `os.environ["API_KEY"] = "v"`), XML (`<password>v</password>`, `<add key="ClearTextPassword"
  value="v"/>`), CLI flags (`--password v`, `--api-key=v`), URL query parameters (`?access_token=v`),
  connection strings (`Password=v;`, `AccountKey=v;`, `SharedAccessSignature=v`), and prose (`the
  password is v`, `token: v`, `api key v` when v looks random). `names.py` judges name and value.
- Shaped contexts: credentials in URLs (`scheme://user:pass@host`, a random user alone as in DSNs),
  `Authorization:` and bearer tokens, cookies, `curl -u user:pass`, `mysql -pPASS`, `sshpass -p`,
  `redis-cli -a`, `.netrc`, Kubernetes Secret manifests, Sidekiq's licence credentials.

Each finder yields `(start, end, kind)` spans of the secret (not of its name), over the original text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from .names import is_placeholder, looks_like_value, looks_random, secret_name

Span = tuple[int, int, str]

# A secret-ish word somewhere in a name (or a prose word before a secret).
# Searched in the lowercased text (a case-insensitive alternation is ~4x slower in `re`).
_HIT = re.compile(r"pass|pwd|secret|token|key|auth|cred|dsn|sig|session|cookie|pat(?![a-z])")
_HIT_ANY_CASE = re.compile(_HIT.pattern, re.IGNORECASE)
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_MAX_NAME = 64
_QUOTES = "\"'`"

# After the name (and its closing quote or bracket): how it is assigned.
_SEP = re.compile(r"[ \t]*(?P<sep>:=|=>|==|=|:|,)[ \t]*")
_PROSE = re.compile(r"[ \t]+(?:is|was|are|=|:)[ \t]+|[ \t]+")
_QUOTED = re.compile(r"(?:[rbuf]{1,2})?(?P<q>[\"'`])(?P<val>[^\"'`\n]{1,1000}?)(?P=q)")
_XML_VALUE_ATTR = re.compile(r"[ \t]+value[ \t]*=[ \t]*(?P<q>[\"'])(?P<val>[^\"'\n]{1,1000})(?P=q)")
_XML_TEXT = re.compile(r"[ \t]*>(?P<val>[^<\n]{1,1000})<")
# Unquoted values: what ends them depends on where the name stands.
_LINE_VALUE = re.compile(r"(?P<val>[^\s\"'`#][^\n]*?)[,;]?[ \t]*(?:[ \t]#.*)?$", re.MULTILINE)
_INLINE_VALUE = re.compile(r"(?P<val>(?:[^\s\"'`;|)#<>&,]|&(?![&\s])|,(?!\s))+)")
_QUERY_VALUE = re.compile(r"(?P<val>[^&\s\"'<>#]+)")
_CONN_VALUE = re.compile(r"(?P<val>[^;\s\"'<>]+)")
_PROSE_VALUE = re.compile(r"[\"'`]?(?P<val>[^\s\"'`,;]{6,}?)(?=[\"'`]?(?:[\s,;]|[.!?](?:\s|$)|$))")
_FLAG_SEP = re.compile(r"=|[ \t]+")
_FLAG_VALUE = re.compile(r"(?P<val>[^\s\"'`;|&)]+)")
_CODE_CHARS = re.compile(r"[()\[\]{}$;]")
_CODE_LINE = re.compile(r"\s(?:=|\|)\s|\s(?:if|else|and|or|for|in|not)\s")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def _name_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    lo = start
    floor = max(0, start - _MAX_NAME)
    while lo > floor and text[lo - 1] in _NAME_CHARS:
        lo -= 1
    hi = end
    ceil = min(len(text), end + _MAX_NAME)
    while hi < ceil and text[hi] in _NAME_CHARS:
        hi += 1
    return lo, hi


def _line_start_before(text: str, pos: int) -> bool:
    """Only indentation, a list dash or `export`/`set`/`ENV` stand between the line start and pos."""
    line_start = text.rfind("\n", 0, pos) + 1
    head = text[line_start:pos].strip(" \t-")
    return head in ("", "export", "set", "ENV", "ARG", "setenv", "declare", "declare -x", "local", "readonly")


# The same words as plain substrings: when none is in the text (most tool output), no regex runs.
_HIT_WORDS = ("pass", "pwd", "secret", "token", "key", "auth", "cred", "dsn", "sig", "session", "cookie", "pat")


def named_values(text: str, low: str) -> Iterator[Span]:
    for word in _HIT_WORDS:
        if word in low:
            break
    else:
        return
    seen_names: set[int] = set()
    # Lowercasing keeps offsets unless a character changes length (rare: `İ`); then search the text.
    hits = _HIT.finditer(low) if len(low) == len(text) else _HIT_ANY_CASE.finditer(text)
    for hit in hits:
        lo, hi = _name_bounds(text, hit.start(), hit.end())
        if lo in seen_names:
            continue
        seen_names.add(lo)
        raw_name = text[lo:hi]
        dashes = len(raw_name) - len(raw_name.lstrip("-"))
        name = raw_name.strip("-.")
        if not name:
            continue
        strength = secret_name(name)
        if strength is None:
            continue
        span = _value_after(text, lo, hi, dashes, strength)
        if span is not None:
            yield span


def _value_after(text: str, lo: int, hi: int, dashes: int, strength: str) -> Span | None:
    before = text[lo - 1] if lo > 0 else "\n"
    pos = hi
    quoted_name = before in _QUOTES and pos < len(text) and text[pos] == before
    if quoted_name:
        pos += 1
        if pos < len(text) and text[pos] == "]":
            pos += 1
        # <add key="ClearTextPassword" value="v" />, <entry key="password">v</entry>
        for pattern in (_XML_VALUE_ATTR, _XML_TEXT):
            m = pattern.match(text, pos)
            if m:
                return _judged(m.start("val"), m.end("val"), m["val"], strength, "config_secret")
    elif before == "<" and pos < len(text) and text[pos] == ">":
        m = _XML_TEXT.match(text, pos)  # <password>v</password>
        if m:
            return _judged(m.start("val"), m.end("val"), m["val"], strength, "config_secret")
        return None

    if dashes:  # --password v, --api-key=v, -token v
        m = _FLAG_SEP.match(text, pos)
        if not m:
            return None
        pos = m.end()
        q = _QUOTED.match(text, pos)
        if q:
            return _judged(q.start("val"), q.end("val"), q["val"], strength, "cli_secret")
        v = _FLAG_VALUE.match(text, pos)
        if v and not v["val"].startswith("-"):
            return _judged(v.start("val"), v.end("val"), v["val"], strength, "cli_secret", code_check=True)
        return None

    sep = _SEP.match(text, pos)
    if sep is None or (sep["sep"] == "," and not quoted_name):
        return _prose_value(text, pos, strength)
    vpos = sep.end()
    q = _QUOTED.match(text, vpos)
    if q:
        if sep["sep"] == "," and not (looks_random(q["val"], 8) or any(c.isdigit() for c in q["val"])):
            return None  # ("token_embd", "output."): two strings in a row, not a name and its value
        return _judged(q.start("val"), q.end("val"), q["val"], strength, "config_secret")
    if sep["sep"] == ",":
        return None
    at_line_start = not quoted_name and _line_start_before(text, lo)
    conn = _CONN_VALUE.match(text, vpos)
    if before in "?&":
        m = _QUERY_VALUE.match(text, vpos)
        kind = "url_secret"
    elif before == ";" or (conn is not None and text.startswith(";", conn.end())):
        m = conn  # Password=v; in ADO.NET, ODBC, JDBC and Azure connection strings
        kind = "connection_string"
    elif at_line_start and sep["sep"] in ("=", ":=", ":"):
        m = _LINE_VALUE.match(text, vpos)
        kind = "env_secret" if sep["sep"] == "=" and sep.start() == pos else "config_secret"
    else:
        m = _INLINE_VALUE.match(text, vpos)
        kind = "env_secret" if sep["sep"] == "=" and sep.start() == pos else "config_secret"
    if m is None:
        return None
    value = m["val"]
    if _looks_like_code(value, text[lo:hi], sep["sep"], sep.start() == pos and sep.end() == vpos, at_line_start):
        return None
    return _judged(m.start("val"), m.end("val"), value, strength, kind)


def _looks_like_code(value: str, name: str, sep: str, tight: bool, at_line_start: bool) -> bool:
    """An unquoted value that is code or prose, not a literal: `password = get_password()`,
    `token: str`, `password=password`, `{ _csrf_token: csrfToken }`, `a single token: embed`.
    `DB_PASSWORD=hunter` (an env line: tight `=`, upper-case name) and `password: hunter` at the start
    of a YAML line are values."""
    if _CODE_CHARS.search(value) or _CODE_LINE.search(value):
        return True
    first = value.split(None, 1)[0]
    if first != value and is_placeholder(first):
        return True  # `password: str = None`, `token: Optional[str]`
    if value.startswith(("http://", "https://")) and "@" not in value:
        return True  # TOKEN_ENDPOINT-like values reached through a strong name part
    if _IDENTIFIER.fullmatch(value) and not any(c.isdigit() for c in value):
        env_style = sep == "=" and tight and name.upper() == name
        yaml_style = at_line_start and sep == ":" and not value[:1].isupper() and "." not in value
        return not (env_style or yaml_style)
    return False


def _judged(start: int, end: int, value: str, strength: str, kind: str, code_check: bool = False) -> Span | None:
    """The value's span when it is a secret's value. `code_check`: an unquoted flag value without a
    digit that is code or a plain identifier (`--token $(cat f)`, `--password-file path`) is not."""
    if code_check and not any(c.isdigit() for c in value):
        if _CODE_CHARS.search(value) or (_IDENTIFIER.fullmatch(value) and not looks_random(value, 8)):
            return None
    if not looks_like_value(value, strength):
        return None
    return (start, end, kind)


def _prose_value(text: str, pos: int, strength: str) -> Span | None:
    """`the password is v`, `token v`: only values that look generated (a word after `password is`
    is prose, not a password)."""
    sep = _PROSE.match(text, pos)
    if sep is None:
        return None
    m = _PROSE_VALUE.match(text, sep.end())
    if m is None:
        return None
    value = m["val"]
    if is_placeholder(value) or _CODE_CHARS.search(value):
        return None  # `Token {i+1}/{len(tokens)}:` is a format string
    bare = not sep.group().strip()
    if bare:
        ok = looks_random(value, 16)
    else:
        ok = len(value) >= 6 and (
            looks_random(value, 8)
            or any(c.isdigit() for c in value)
            or any(not c.isalnum() for c in value)
            or (value != value.lower() and value != value.upper() and value != value.capitalize())
            or len(value) >= 12
        )
    if not ok or (strength == "weak" and not looks_random(value, 12)):
        return None
    return (m.start("val"), m.end("val"), "password" if not bare else "secret_in_prose")


# -- shaped contexts ---------------------------------------------------------------------------

_URL_CREDS = re.compile(
    r"\b[A-Za-z][A-Za-z0-9+.\-]{0,20}://(?P<user>[^\s:/@\"'<>]{0,128}):"
    r"(?P<val>[^\s/\"'@<>]{1,256}(?:@[^\s/\"'@<>]{1,256}){0,3})(?=@[^\s/@]+)"
)
_URL_USER_TOKEN = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]{0,20}://(?P<val>[A-Za-z0-9_\-.~%]{16,256})@[A-Za-z0-9.\-\[]")
_AUTH_HEADER = re.compile(
    r"(?i)\b(?:proxy-)?authorization[\"']?[ \t]*[:=][ \t]*[\"']?(?:(?:bearer|basic|token|digest|bot|apikey|sso-key|"
    r"splunk|ghost|key|hmac|otp)[ \t]+)?(?P<val>[A-Za-z0-9._~+/=\-:]{8,})"
)
_BEARER = re.compile(r"\b[Bb]earer[ \t]+(?P<val>[A-Za-z0-9._~+/\-]{16,}=*)")
_COOKIE = re.compile(r"(?i)\b(?:set-)?cookie[\"']?[ \t]*[:=][ \t]*[\"']?(?P<pairs>[^\n\"']{3,2000})")
_COOKIE_PAIR = re.compile(r"(?P<name>[^=;\s]{1,128})=(?P<val>[^;\s]{1,4096})")
_CURL_USER = re.compile(r"(?:^|\s)(?:-u|--user|--proxy-user)[ \t]*[\"']?[^\s:\"']+:(?P<val>[^\s\"']+)")
_MYSQL_P = re.compile(
    r"\b(?:mysql|mysqldump|mysqladmin|mysqlimport|mysqlsh|mariadb|mariadb-dump)\b[^\n|;&]*?"
    r"[ \t]-p(?P<val>[^\s\"'-][^\s\"']*)"
)
_SSHPASS = re.compile(r"\bsshpass[ \t]+-p[ \t]*(?P<q>[\"']?)(?P<val>[^\s\"']+)(?P=q)")
_REDIS_A = re.compile(r"\bredis-cli\b[^\n|;&]*?[ \t](?:-a|--pass)[ \t]+(?P<q>[\"']?)(?P<val>[^\s\"']+)(?P=q)")
_NETRC = re.compile(r"\bmachine[ \t]+\S+(?:[ \t\n]+login[ \t]+\S+)?[ \t\n]+password[ \t]+(?P<val>\S+)")
_SIDEKIQ = re.compile(
    r"(?i)BUNDLE_(?:ENTERPRISE|GEMS)__CONTRIBSYS__COM[\"']?[ \t]*[:=][ \t]*[\"']?(?P<val>[a-f0-9]{8}:[a-f0-9]{8})"
)
_K8S_DATA = re.compile(r"(?m)^(?P<indent>[ \t]*)(?:data|stringData):[ \t]*\n")
_K8S_ITEM = re.compile(r"(?P<indent>[ \t]+)[A-Za-z0-9_.\-]+:[ \t]+(?P<val>[^\n]+?)[ \t]*$", re.MULTILINE)


def shaped_contexts(text: str, low: str) -> Iterator[Span]:
    if "://" in text:
        for m in _URL_CREDS.finditer(text):
            if not is_placeholder(m["val"]):
                yield (m.start("val"), m.end("val"), "connection_string")
        for m in _URL_USER_TOKEN.finditer(text):
            if looks_random(m["val"], 16) and not is_placeholder(m["val"]):
                yield (m.start("val"), m.end("val"), "connection_string")
    if "authorization" in low:
        for m in _AUTH_HEADER.finditer(text):
            if not is_placeholder(m["val"]):
                yield (m.start("val"), m.end("val"), "auth_header")
    if "bearer" in low:
        for m in _BEARER.finditer(text):
            if any(c.isdigit() for c in m["val"]) and not is_placeholder(m["val"]):
                yield (m.start("val"), m.end("val"), "auth_header")
    if "cookie" in low:
        for m in _COOKIE.finditer(text):
            base = m.start("pairs")
            for p in _COOKIE_PAIR.finditer(m["pairs"]):
                name, value = p["name"], p["val"]
                if is_placeholder(value):
                    continue
                if secret_name(name) in ("strong", "token") or looks_random(value, 16):
                    yield (base + p.start("val"), base + p.end("val"), "cookie")
    if "-u" in text or "--user" in text or "--proxy-user" in text:
        for m in _CURL_USER.finditer(text):
            if not is_placeholder(m["val"]):
                yield (m.start("val"), m.end("val"), "password")
    for gate, pattern in (("mysql", _MYSQL_P), ("mariadb", _MYSQL_P), ("sshpass", _SSHPASS), ("redis-cli", _REDIS_A)):
        if gate in low:
            for m in pattern.finditer(text):
                if not is_placeholder(m["val"]):
                    yield (m.start("val"), m.end("val"), "cli_secret")
    if "machine" in low and "password" in low:
        for m in _NETRC.finditer(text):
            if not is_placeholder(m["val"]):
                yield (m.start("val"), m.end("val"), "password")
    if "contribsys" in low:
        for m in _SIDEKIQ.finditer(text):
            yield (m.start("val"), m.end("val"), "sidekiq_secret")
    if "kind: secret" in low:
        yield from _kubernetes_secret_data(text)


def _kubernetes_secret_data(text: str) -> Iterator[Span]:
    """Every value under `data:` / `stringData:` of a Secret manifest: the keys there are arbitrary."""
    for block in _K8S_DATA.finditer(text):
        outer = len(block["indent"].expandtabs())
        pos = block.end()
        while pos < len(text):
            m = _K8S_ITEM.match(text, pos)
            if m is None or len(m["indent"].expandtabs()) <= outer:
                break
            if not is_placeholder(m["val"]) and m["val"] not in ("|", ">", "|-", ">-"):
                yield (m.start("val"), m.end("val"), "kubernetes_secret")
            pos = m.end() + 1
