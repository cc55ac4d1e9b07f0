"""Is this name a secret's name, and is this value the secret itself?

A value is secret because of what names it (`DB_PASSWORD=...`, `"client_secret": "..."`,
`--api-key x`, `?access_token=...`). Names split into parts (`clientSecret` -> client secret,
`DB_PASSWORD` -> db password) and are judged by them:
- strong names (password, secret, token, credentials, dsn, private_key_id, ...): any value that is
  not a placeholder, a reference or code is the secret;
- weak names (`*_key`, auth, session, signature, ...): only a value that looks random, so that
  `cache_key = "user:1"`, `primary_key: id` and `auth: basic` stay;
- a part that says the value is *about* the secret (TOKEN_URL, max_tokens, password_field,
  PASSWORD_MIN_LENGTH) makes the name not secret at all.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache

MARK_PREFIX = "[REDACTED:"

_STRONG_PARTS = {
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "pass",
    "secret",
    "secrets",
    "token",
    "apikey",
    "credential",
    "credentials",
    "creds",
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
    "pat",
}
# Names of what people choose (any literal is the secret, a plain word included) ...
_PASSWORD_PARTS = {"password", "passwd", "passphrase", "pwd", "pass", "credential", "credentials", "creds", "dsn"}
# ... and of what machines generate (a short lowercase word is not one): token, secret, api key.
_STRONG_PAIRS = {
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
    ("account", "key"),
    ("shared", "key"),
    ("app", "key"),
    ("admin", "key"),
    ("write", "key"),
    ("server", "key"),
    ("service", "key"),
    ("key", "data"),
    ("connection", "string"),
}
# Names that hold a secret only when the value looks random.
_WEAK_PARTS = {"key", "auth", "signature", "sig", "session", "sessionid", "sid", "cookie"}
# A weak name that also names a provider (HEROKU_KEY, trello_key, SNYK_AUTH) is a strong one.
_PROVIDER_WORDS = {
    "adafruit", "algolia", "anthropic", "asana", "atlassian", "auth0", "aws", "azure", "beamer", "bitbucket",
    "bittrex", "bugsnag", "circleci", "clerk", "cloudflare", "cloudinary", "codecov", "cohere", "coinbase",
    "confluence", "confluent", "contentful", "datadog", "dd", "deepgram", "deepseek", "digitalocean", "discord",
    "docker", "drone", "droneci", "dropbox", "elevenlabs", "etsy", "facebook", "fastly", "finicity", "finnhub",
    "firebase", "flickr", "freshbooks", "gcp", "gitea", "github", "gitlab", "gitter", "gocardless", "google",
    "groq", "heroku", "honeycomb", "hubspot", "intercom", "jfrog", "jira", "kraken", "kucoin", "launchdarkly",
    "linkedin", "linode", "lob", "looker", "mailchimp", "mailgun", "mapbox", "mattermost", "meraki",
    "messagebird", "mistral", "mixpanel", "netlify", "nytimes", "okta", "openai", "opsgenie", "pagerduty",
    "plaid", "privateai", "pusher", "rapidapi", "rollbar", "segment", "sendbird", "sendgrid", "shodan",
    "slack", "snyk", "sonar", "squarespace", "stripe", "sumologic", "supabase", "telegram", "together",
    "travis", "trello", "twilio", "twitch", "twitter", "vercel", "virustotal", "vultr", "wandb", "zendesk",
}  # fmt: skip
_STRONG_WHOLE = {"private_key_id", "privatekeyid"}
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
    "expiration",
    "timeout",
    "type",
    "name",
    "names",
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
    "hashed",
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
    "keyid",
    "bytes",
    "bits",
    "index",
    "idx",
    "out",
    "column",
    "col",
    "version",
    "algorithm",
    "alg",
    "method",
    "scheme",
    "ref",
    "location",
    "generator",
    "fingerprint",
    "public",
    "pub",
    "publishable",
    "filename",
    "stdin",
    # a language model's tokens, not credentials: bos_token, pad_token, special_tokens, token_embd
    "bos",
    "eos",
    "pad",
    "unk",
    "sep",
    "mask",
    "stop",
    "special",
    "vocab",
    "embd",
    "embed",
    "embedding",
    "embeddings",
    "ids",
    "tokens",  # counts and lists (total_tokens, special_tokens); a token in one is still found by its shape
    "duration",
    "delay",
    "interval",
    "seconds",
    "rate",
    "ratio",
    "weight",
    "score",
    "level",
    "threshold",
    "offset",
    "position",
    "window",
    "per",
}
_PLACEHOLDER = re.compile(
    r"^(?:<[^>]*>|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?|\$\{[^}]*\}|\{\{.*\}\}|\{[A-Za-z_][A-Za-z0-9_.]*\}|%\(.*\)s|%s|"
    r"\*+|[xX]{3,}|\.\.\.|.*\.\.\.|"
    r"\[REDACTED:[a-z0-9_]+\].*|(?:your|my|the|some|insert|enter|replace)[-_ ].*|changeme|change[-_]me|redacted|"
    r"example|dummy|none|null|nil|true|false|yes|no|on|off|undefined|str|int|bool|bytes|string|number|any|"
    r"optional\[.*|secretstr|process\.env\..*|os\.environ.*|os\.getenv.*|\$\(.*|env\(.*|getenv\(.*|"
    r"secrets\.[A-Za-z_]+.*|vault:.*|ENC\[.*|!vault.*|@[A-Za-z_.]+)$",
    re.IGNORECASE,
)


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def name_parts(name: str) -> list[str]:
    """clientSecret -> [client, secret]; DB_PASSWORD -> [db, password]; api-key -> [api, key]."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [p for p in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if p]


@lru_cache(maxsize=4096)
def secret_name(name: str) -> str | None:
    """How much this name says its value is a secret: 'strong' (a password: any literal), 'token'
    (a generated secret: any literal but a short lowercase word), 'weak' (only a random-looking
    value), or None."""
    low = name.lower().strip("\"'`[]")
    if low.replace("-", "_") in _STRONG_WHOLE or low.endswith(("private_key_id", "privatekeyid")):
        return "strong"
    parts = name_parts(name)
    if not parts or any(p in _NOT_SECRET_PARTS for p in parts):
        return None
    if any(p in _PASSWORD_PARTS or p.endswith(("password", "passwd", "passphrase")) for p in parts):
        return "strong"
    if any(p in _STRONG_PARTS for p in parts):
        return "token"
    # run-together names: authtoken, githubApitoken, clientsecret
    if any(p.endswith(("secret", "token", "apikey")) for p in parts):
        return "token"
    if any(pair in _STRONG_PAIRS for pair in zip(parts, parts[1:])):
        return "token"
    if parts[-1] in _WEAK_PARTS or parts[-1].endswith("key") or any(p in _WEAK_PARTS for p in parts):
        return "token" if any(p in _PROVIDER_WORDS for p in parts) else "weak"
    return None


def is_secret_name(name: str) -> bool:
    return secret_name(name) is not None


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values()) if n else 0.0


def looks_random(value: str, min_len: int = 12) -> bool:
    """A generated token rather than a word, an identifier or a number: long, letters and digits
    mixed (or three character classes), varied, and no spaces (that is a phrase)."""
    if len(value) < min_len or any(c.isspace() for c in value):
        return False
    has_digit = any(c.isdigit() for c in value)
    has_lower = any(c.islower() for c in value)
    has_upper = any(c.isupper() for c in value)
    classes = has_digit + has_lower + has_upper + any(not c.isalnum() for c in value)
    if not has_digit and classes < 3:
        return False
    if not (has_lower or has_upper):
        return False
    return entropy(value) >= 3.0


def is_placeholder(value: str) -> bool:
    return value.startswith(MARK_PREFIX) or bool(_PLACEHOLDER.match(value))


def looks_like_value(value: str, strength: str | None) -> bool:
    """Is this the secret itself, rather than a reference to one, a placeholder or a field name?"""
    value = value.strip()
    if len(value) < 3 or is_placeholder(value):
        return False
    if strength == "token" and re.fullmatch(r"[a-z]{1,11}", value):
        return False  # `test_token = "music"`: generated tokens are not short lowercase words
    if strength == "weak":
        # a random-looking value, but not an identifier's shape (a UUID: request, trace, idempotency keys)
        return looks_random(value, 12) and not _UUID.fullmatch(value)
    # `password_field = "password"`, `TOKEN_KEY = "auth_token"`: an identifier made of secret words
    if re.fullmatch(r"[a-z_\-.]+", value) and any(
        p in _STRONG_PARTS or p in {"key", "auth", "api"} for p in name_parts(value)
    ):
        return False
    # a file reference (`password_file`-style values given to a secret name): /run/secrets/db
    if re.fullmatch(r"(?:~|\.{0,2})/[A-Za-z0-9_./\-]+", value) and "/" in value[1:]:
        return False
    return True
