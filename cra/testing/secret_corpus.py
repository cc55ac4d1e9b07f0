"""A generated corpus of secrets, and of things that only look like secrets, for testing redaction.

Written from the providers' documented token formats (prefix, alphabet, length) and from the ways
credentials show up in a coding session (a `.env` printed by `cat`, a connection string in a
config, a flag on a command line, a header in a curl call, a sentence in a prompt), independently
of the redactor's rules: the redactor is tested against what secrets look like, not against a
mirror of itself. Every value is random (seeded), so no two runs share a token and nothing here is
a real credential.

    from cra.testing.secret_corpus import secrets, lookalikes
    for item in secrets(seed=0): item.kind, item.value, item.text

`secrets()`: each item's `value` must be gone from whatever redaction returns for its `text`.
`lookalikes()`: each item's `value` must still be there (git SHAs, UUIDs, checksums, lockfile
hashes, data URIs, colours, identifiers, references to secrets, ...). `plant()` puts both into
copies of recorded Claude Code sessions (tests/fixtures/recorded/*): the prompt, Bash/Read/Grep
output, Write/Edit input, a Bash command, thinking, the final text, a subagent, the tool schemas.
"""

from __future__ import annotations

import base64
import json
import random
import shutil
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ALNUM = string.ascii_letters + string.digits
LOWER_ALNUM = string.ascii_lowercase + string.digits
UPPER_ALNUM = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"
URLSAFE = ALNUM + "-_"
B64 = ALNUM + "+/"
BECH32_UPPER = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"


@dataclass(frozen=True)
class Item:
    kind: str
    value: str  # the secret that must go (or, for a look-alike, the text that must stay)
    text: str  # the value in its context, as a session would show it


class _Gen:
    def __init__(self, rng: random.Random):
        self.rng = rng

    def s(self, alphabet: str, n: int) -> str:
        """n random characters; at least one digit and one letter when the alphabet has both."""
        while True:
            out = "".join(self.rng.choice(alphabet) for _ in range(n))
            has_digits = any(c.isdigit() for c in alphabet)
            has_letters = any(c.isalpha() for c in alphabet)
            if n < 8 or (
                (not has_digits or any(c.isdigit() for c in out)) and (not has_letters or any(c.isalpha() for c in out))
            ):
                return out

    def digits(self, n: int) -> str:
        return str(self.rng.randint(1, 9)) + "".join(self.rng.choice(string.digits) for _ in range(n - 1))

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def b64(self, nbytes: int) -> str:
        return base64.b64encode(self.rng.randbytes(nbytes)).decode()

    def b64url(self, nbytes: int) -> str:
        return base64.urlsafe_b64encode(self.rng.randbytes(nbytes)).decode().rstrip("=")

    def password(self) -> str:
        # what people pick when told to: letters, digits, a symbol or two (none that ends a token)
        return self.s(ALNUM, 10) + self.rng.choice("!@%^*~+") + self.s(ALNUM, 5)

    def pem(self, label: str, nbytes: int = 600) -> tuple[str, str]:
        body = base64.b64encode(self.rng.randbytes(nbytes)).decode()
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        return lines[3], f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"

    def jwt(self, claims: dict) -> str:
        def part(obj):
            return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode().rstrip("=")

        return part({"alg": "HS256", "typ": "JWT"}) + "." + part(claims) + "." + self.b64url(32)


# -- secrets --------------------------------------------------------------------------------------

# (kind, make): make(gen) returns (value, text). A shaped token is planted in a neutral sentence (no
# secret-ish word near it), so only its shape can give it away.
Maker = Callable[[_Gen], tuple[str, str]]


def _neutral(value: str) -> str:
    return f"I ran the deploy with {value} and it worked."


def _shaped(prefix: str, alphabet: str, n: int, suffix: str = "") -> Maker:
    def make(g: _Gen) -> tuple[str, str]:
        value = prefix + g.s(alphabet, n) + suffix
        return value, _neutral(value)

    return make


def _named(template: str, value_of: Callable[[_Gen], str]) -> Maker:
    """A value assigned to a name, in some notation: `template` has `{v}` where the value goes."""

    def make(g: _Gen) -> tuple[str, str]:
        value = value_of(g)
        return value, template.format(v=value)

    return make


def _pw(g: _Gen) -> str:
    return g.password()


def _hexv(n: int) -> Callable[[_Gen], str]:
    return lambda g: g.s(HEX, n)


def _alnum(n: int) -> Callable[[_Gen], str]:
    return lambda g: g.s(ALNUM, n)


def _pem_maker(label: str) -> Maker:
    def make(g: _Gen) -> tuple[str, str]:
        line, block = g.pem(label)
        return line, "$ cat id_key\n" + block

    return make


def _gcp_service_account(g: _Gen) -> tuple[str, str]:
    key_id = g.s(HEX, 40)
    _, block = g.pem("PRIVATE KEY")
    doc = {
        "type": "service_account",
        "project_id": "demo-project",
        "private_key_id": key_id,
        "private_key": block,
        "client_email": "deployer@demo-project.iam.gserviceaccount.com",
    }
    return key_id, json.dumps(doc, indent=2)


def _gcp_private_key(g: _Gen) -> tuple[str, str]:
    line, block = g.pem("PRIVATE KEY")
    doc = {"type": "service_account", "private_key": block, "client_id": g.digits(21)}
    return line, json.dumps(doc, indent=2)


def _putty(g: _Gen) -> tuple[str, str]:
    private = g.b64(96)
    text = (
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: deploy\nPublic-Lines: 2\n"
        f"{g.b64(48)}\n{g.b64(12)}\nPrivate-Lines: 1\n{private}\nPrivate-MAC: {g.s(HEX, 64)}\n"
    )
    return private, text


def _k8s_secret(g: _Gen) -> tuple[str, str]:
    value = g.b64(24)
    text = (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db-credentials\ntype: Opaque\ndata:\n"
        f"  username: {base64.b64encode(b'app').decode()}\n  db.conf: {value}\n"
    )
    return value, text


def _docker_auth(g: _Gen) -> tuple[str, str]:
    value = base64.b64encode(f"deployer:{g.password()}".encode()).decode()
    return value, json.dumps({"auths": {"registry.example.com": {"auth": value}}}, indent=2)


def _grafana_api_key(g: _Gen) -> tuple[str, str]:
    raw = json.dumps({"k": g.s(ALNUM, 32), "n": "deploy", "id": g.rng.randint(1, 99)}, separators=(",", ":"))
    value = base64.b64encode(raw.encode()).decode()
    return value, _neutral(value)


def _bcrypt(g: _Gen) -> tuple[str, str]:
    value = "$2b$12$" + g.s(ALNUM + "./", 53)
    return value, f"admin:{value}"


def _sha512crypt(g: _Gen) -> tuple[str, str]:
    value = "$6$" + g.s(ALNUM, 16) + "$" + g.s(ALNUM + "./", 86)
    return value, f"root:{value}:19700:0:99999:7:::"


def _telegram(g: _Gen) -> tuple[str, str]:
    value = g.digits(10) + ":AA" + g.s(URLSAFE, 33)
    return value, f"curl https://api.telegram.org/bot{value}/getUpdates"


def _basic_header(g: _Gen) -> tuple[str, str]:
    value = base64.b64encode(f"admin:{g.password()}".encode()).decode()
    return value, f'curl -H "Authorization: Basic {value}" https://ci.example.com/api/json'


def _google_chat(g: _Gen) -> tuple[str, str]:
    token = g.b64url(32)
    url = f"https://chat.googleapis.com/v1/spaces/AAAA{g.s(ALNUM, 7)}/messages?key=AIza{g.s(URLSAFE, 35)}&token={token}"
    return token, f"webhook: {url}"


def _teams(g: _Gen) -> tuple[str, str]:
    value = (
        f"https://contoso.webhook.office.com/webhookb2/{g.uuid()}@{g.uuid()}/IncomingWebhook/{g.s(HEX, 32)}/{g.uuid()}"
    )
    return value, f"posting the build status to {value}"


def _azure_sas(g: _Gen) -> tuple[str, str]:
    sig = g.b64(32).replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    url = (
        "https://demostore.blob.core.windows.net/backups/db.bak?sv=2022-11-02&ss=b&srt=o&sp=r"
        f"&se=2026-12-01T00:00:00Z&spr=https&sig={sig}"
    )
    return sig, f"az storage blob download --blob-url '{url}'"


def _sentry_dsn(g: _Gen) -> tuple[str, str]:
    key = g.s(HEX, 32)
    return key, f'sentry_sdk.init(dsn="https://{key}@o{g.digits(6)}.ingest.sentry.io/{g.digits(7)}")'


def _twitter_bearer(g: _Gen) -> tuple[str, str]:
    value = "A" * 22 + g.s(ALNUM, 20) + "%3D" + g.s(ALNUM, 50)
    return value, _neutral(value)


def _asana(g: _Gen) -> tuple[str, str]:
    value = f"1/{g.digits(16)}:{g.s(HEX, 32)}"
    return value, f'ASANA_ACCESS_TOKEN="{value}"'


def _onepassword_secret_key(g: _Gen) -> tuple[str, str]:
    value = "-".join(["A3", g.s(UPPER_ALNUM, 6), g.s(UPPER_ALNUM, 6)] + [g.s(UPPER_ALNUM, 5) for _ in range(4)])
    return value, _neutral(value)


SECRET_KINDS: dict[str, Maker] = {
    # key material
    "rsa_private_key": _pem_maker("RSA PRIVATE KEY"),
    "pkcs8_private_key": _pem_maker("PRIVATE KEY"),
    "ec_private_key": _pem_maker("EC PRIVATE KEY"),
    "dsa_private_key": _pem_maker("DSA PRIVATE KEY"),
    "openssh_private_key": _pem_maker("OPENSSH PRIVATE KEY"),
    "encrypted_private_key": _pem_maker("ENCRYPTED PRIVATE KEY"),
    "pgp_private_key_block": _pem_maker("PGP PRIVATE KEY BLOCK"),
    "putty_private_key": _putty,
    "age_secret_key": _shaped("AGE-SECRET-KEY-1", BECH32_UPPER, 58),
    "bcrypt_hash": _bcrypt,
    "sha512_crypt_hash": _sha512crypt,
    "jwt": lambda g: (v := g.jwt({"sub": g.uuid(), "role": "admin"}), _neutral(v)),
    # AI providers
    "anthropic_api_key": _shaped("sk-ant-api03-", URLSAFE, 93, "AA"),
    "anthropic_admin_key": _shaped("sk-ant-admin01-", URLSAFE, 93, "AA"),
    "openai_project_key": _shaped("sk-proj-", URLSAFE, 156),
    "openai_legacy_key": lambda g: (v := "sk-" + g.s(ALNUM, 20) + "T3BlbkFJ" + g.s(ALNUM, 20), _neutral(v)),
    "openai_service_account_key": _shaped("sk-svcacct-", URLSAFE, 120),
    "openrouter_key": _shaped("sk-or-v1-", HEX, 64),
    "deepseek_key": _shaped("sk-", HEX, 32),
    "groq_key": _shaped("gsk_", ALNUM, 52),
    "xai_key": _shaped("xai-", ALNUM, 80),
    "perplexity_key": _shaped("pplx-", ALNUM, 48),
    "huggingface_token": _shaped("hf_", ALNUM, 34),
    "huggingface_org_token": _shaped("api_org_", ALNUM, 34),
    "replicate_token": _shaped("r8_", ALNUM, 37),
    "langsmith_key": lambda g: (v := f"lsv2_pt_{g.s(HEX, 32)}_{g.s(HEX, 10)}", _neutral(v)),
    "pinecone_key": _shaped("pcsk_", ALNUM, 70),
    "tavily_key": _shaped("tvly-", ALNUM, 32),
    "mistral_api_key": _named("MISTRAL_API_KEY={v}", _alnum(32)),
    "cohere_api_key": _named('co = cohere.Client(api_key="{v}")', _alnum(40)),
    "wandb_api_key": _named("WANDB_API_KEY={v}", _hexv(40)),
    # cloud
    "aws_access_key_id": _shaped("AKIA", UPPER_ALNUM, 16),
    "aws_temporary_access_key_id": _shaped("ASIA", UPPER_ALNUM, 16),
    "aws_secret_access_key": _named(
        "[default]\naws_secret_access_key = {v}\nregion = eu-west-1", lambda g: g.s(B64, 40)
    ),
    "aws_session_token": _named("aws_session_token = {v}", lambda g: "FwoGZXIvYXdzE" + g.s(B64, 300)),
    "aws_bedrock_key": _shaped("ABSK", B64, 120),
    "aws_presigned_url_signature": _named(
        "curl 'https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20261121T000000Z"
        "&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature={v}'",
        _hexv(64),
    ),
    "google_api_key": _shaped("AIza", URLSAFE, 35),
    "google_oauth_access_token": _shaped("ya29.", URLSAFE, 120),
    "google_oauth_client_secret": _shaped("GOCSPX-", URLSAFE, 28),
    "google_oauth_refresh_token": _shaped("1//0", URLSAFE, 100),
    "gcp_service_account_key_id": _gcp_service_account,
    "gcp_service_account_private_key": _gcp_private_key,
    "firebase_fcm_server_key": lambda g: (v := "AAAA" + g.s(URLSAFE, 7) + ":APA91b" + g.s(URLSAFE, 134), _neutral(v)),
    "azure_client_secret": lambda g: (v := g.s(ALNUM, 3) + g.digits(1) + "Q~" + g.s(ALNUM + "_-.", 34), _neutral(v)),
    "azure_storage_account_key": _named(
        "DefaultEndpointsProtocol=https;AccountName=demostore;AccountKey={v};EndpointSuffix=core.windows.net",
        lambda g: g.b64(64),
    ),
    "azure_sas_signature": _azure_sas,
    "azure_service_bus_key": _named(
        "Endpoint=sb://demo.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={v}",
        lambda g: g.b64(32),
    ),
    "azure_cosmos_key": _named(
        "AccountEndpoint=https://demo.documents.azure.com:443/;AccountKey={v};", lambda g: g.b64(64)
    ),
    "azure_devops_pat": _named("AZURE_DEVOPS_EXT_PAT={v}", lambda g: g.s(string.ascii_lowercase + "234567", 52)),
    "alibaba_access_key_id": _shaped("LTAI", ALNUM, 20),
    "alibaba_access_key_secret": _named("ALIBABA_CLOUD_ACCESS_KEY_SECRET={v}", _alnum(30)),
    "yandex_api_key": _shaped("AQVN", URLSAFE, 36),
    "digitalocean_pat": _shaped("dop_v1_", HEX, 64),
    "digitalocean_oauth_token": _shaped("doo_v1_", HEX, 64),
    "digitalocean_refresh_token": _shaped("dor_v1_", HEX, 64),
    "databricks_token": _shaped("dapi", HEX, 32),
    "cloudflare_origin_ca_key": lambda g: (v := f"v1.0-{g.s(HEX, 24)}-{g.s(HEX, 146)}", _neutral(v)),
    "cloudflare_api_token": _named("CLOUDFLARE_API_TOKEN={v}", lambda g: g.s(URLSAFE, 40)),
    "cloudflare_global_api_key": _named("export CF_API_KEY={v}", _hexv(37)),
    "flyio_token": _shaped("fo1_", URLSAFE, 43),
    "heroku_api_key_v2": _shaped("HRKU-AA", URLSAFE, 58),
    "heroku_api_key": _named("HEROKU_API_KEY={v}", lambda g: g.uuid()),
    "netlify_token": _shaped("nfp_", ALNUM, 40),
    "vercel_token": _named("vercel deploy --token {v}", _alnum(24)),
    "supabase_access_token": _shaped("sbp_", HEX, 40),
    "supabase_service_role_key": _named(
        "SUPABASE_SERVICE_ROLE_KEY={v}", lambda g: g.jwt({"iss": "supabase", "role": "service_role"})
    ),
    "neon_api_key": _shaped("napi_", LOWER_ALNUM, 64),
    "planetscale_token": _shaped("pscale_tkn_", URLSAFE, 43),
    "planetscale_password": _shaped("pscale_pw_", URLSAFE, 43),
    "scalingo_token": _shaped("tk-us-", URLSAFE, 48),
    "openshift_token": _shaped("sha256~", URLSAFE, 43),
    "vault_service_token": _shaped("hvs.", URLSAFE, 90),
    "vault_batch_token": _shaped("hvb.", URLSAFE, 138),
    "terraform_cloud_token": lambda g: (v := g.s(ALNUM, 14) + ".atlasv1." + g.s(URLSAFE, 67), _neutral(v)),
    "pulumi_token": _shaped("pul-", HEX, 40),
    "doppler_token": _shaped("dp.pt.", ALNUM, 43),
    "infracost_key": _shaped("ico-", ALNUM, 32),
    "dynatrace_token": lambda g: (v := f"dt0c01.{g.s(UPPER_ALNUM, 24)}.{g.s(UPPER_ALNUM, 64)}", _neutral(v)),
    "newrelic_user_key": _shaped("NRAK-", UPPER_ALNUM, 27),
    "newrelic_insert_key": _shaped("NRII-", ALNUM, 32),
    "grafana_cloud_token": lambda g: (v := "glc_" + g.b64(60), _neutral(v)),
    "grafana_service_account_token": lambda g: (v := f"glsa_{g.s(ALNUM, 32)}_{g.s(HEX, 8)}", _neutral(v)),
    "grafana_api_key": _grafana_api_key,
    "sentry_dsn": _sentry_dsn,
    "sentry_user_token": _shaped("sntryu_", HEX, 64),
    "sentry_org_token": lambda g: (v := "sntrys_" + g.jwt({"iat": 1}).split(".")[1] + g.s(ALNUM, 40), _neutral(v)),
    "datadog_api_key": _named("DD_API_KEY={v}", _hexv(32)),
    "datadog_app_key": _named("  app_key: {v}", _hexv(40)),
    # code hosting, CI, registries
    "github_pat_classic": _shaped("ghp_", ALNUM, 36),
    "github_oauth_token": _shaped("gho_", ALNUM, 36),
    "github_user_to_server_token": _shaped("ghu_", ALNUM, 36),
    "github_server_to_server_token": _shaped("ghs_", ALNUM, 36),
    "github_refresh_token": _shaped("ghr_", ALNUM, 76),
    "github_fine_grained_pat": lambda g: (v := f"github_pat_{g.s(ALNUM, 22)}_{g.s(ALNUM, 59)}", _neutral(v)),
    "gitlab_pat": _shaped("glpat-", URLSAFE, 20),
    "gitlab_pipeline_trigger_token": _shaped("glptt-", HEX, 40),
    "gitlab_runner_token": _shaped("glrt-", URLSAFE, 20),
    "gitlab_deploy_token": _shaped("gldt-", URLSAFE, 20),
    "gitlab_runner_registration_token": _shaped("GR1348941", URLSAFE, 20),
    "gitlab_session_cookie": _named("Cookie: _gitlab_session={v}; event_filter=all", _hexv(32)),
    "bitbucket_app_password": _shaped("ATBB", ALNUM, 32),
    "atlassian_api_token": lambda g: (v := "ATATT3xFfGF0" + g.s(URLSAFE, 180) + "=" + g.s(HEX, 8).upper(), _neutral(v)),
    "jira_api_token": _named("JIRA_API_TOKEN={v}", _alnum(24)),
    "npm_token": _shaped("npm_", ALNUM, 36),
    "npmrc_auth_token": _named("//registry.npmjs.org/:_authToken={v}", lambda g: g.uuid()),
    "pypi_token": _shaped("pypi-AgEIcHlwaS5vcmc", URLSAFE, 70),
    "pypirc_password": _named("[testpypi]\nusername = deployer\npassword = {v}\n", _pw),
    "rubygems_key": _shaped("rubygems_", HEX, 48),
    "clojars_token": _shaped("CLOJARS_", LOWER_ALNUM, 60),
    "docker_pat": _shaped("dckr_pat_", URLSAFE, 27),
    "docker_config_auth": _docker_auth,
    "artifactory_api_key": _shaped("AKCp", ALNUM, 69),
    "jfrog_identity_token": _named("jfrog config add --access-token {v}", lambda g: g.s(URLSAFE, 64)),
    "circleci_token": lambda g: (v := f"CCIPAT_{g.s(ALNUM, 22)}_{g.s(HEX, 40)}", _neutral(v)),
    "buildkite_token": _shaped("bkua_", HEX, 40),
    "sonarqube_token": _shaped("squ_", HEX, 40),
    "sourcegraph_token": lambda g: (v := f"sgp_{g.s(HEX, 16)}_{g.s(HEX, 40)}", _neutral(v)),
    "octopus_deploy_key": _shaped("API-", UPPER_ALNUM, 26),
    "harness_pat": lambda g: (v := f"pat.{g.s(URLSAFE, 22)}.{g.s(ALNUM, 24)}.{g.s(ALNUM, 20)}", _neutral(v)),
    "prefect_key": _shaped("pnu_", ALNUM, 36),
    "postman_key": lambda g: (v := f"PMAK-{g.s(HEX, 24)}-{g.s(HEX, 34)}", _neutral(v)),
    "readme_key": _shaped("rdme_", LOWER_ALNUM, 70),
    "figma_token": _shaped("figd_", URLSAFE, 40),
    "linear_key": _shaped("lin_api_", ALNUM, 40),
    "notion_token": lambda g: (v := "ntn_" + g.digits(11) + g.s(ALNUM, 35), _neutral(v)),
    "notion_legacy_token": _shaped("secret_", ALNUM, 43),
    "airtable_pat": lambda g: (v := f"pat{g.s(ALNUM, 14)}.{g.s(HEX, 64)}", _neutral(v)),
    "adobe_client_secret": _shaped("p8e-", URLSAFE, 32),
    "frameio_token": _shaped("fio-u-", URLSAFE, 64),
    "typeform_token": _shaped("tfp_", URLSAFE, 59),
    "intra42_secret": _shaped("s-s4t2ud-", HEX, 64),
    "onepassword_secret_key": _onepassword_secret_key,
    "onepassword_service_token": lambda g: (
        v := "ops_" + g.jwt({"signInAddress": "x"}).split(".")[0] + g.s(ALNUM, 200),
        _neutral(v),
    ),
    "maxmind_license_key": lambda g: (v := f"{g.s(ALNUM, 6)}_{g.s(ALNUM, 29)}_mmk", _neutral(v)),
    "settlemint_token": _shaped("sm_pat_", ALNUM, 16),
    "launchdarkly_sdk_key": lambda g: (v := "sdk-" + g.uuid(), _neutral(v)),
    # chat, mail, messaging
    "slack_bot_token": lambda g: (v := f"xoxb-{g.digits(12)}-{g.digits(13)}-{g.s(ALNUM, 24)}", _neutral(v)),
    "slack_user_token": lambda g: (
        v := f"xoxp-{g.digits(12)}-{g.digits(12)}-{g.digits(13)}-{g.s(HEX, 32)}",
        _neutral(v),
    ),
    "slack_app_token": lambda g: (v := f"xapp-1-A{g.s(UPPER_ALNUM, 10)}-{g.digits(13)}-{g.s(HEX, 64)}", _neutral(v)),
    "slack_config_token": lambda g: (v := f"xoxe.xoxp-1-{g.s(URLSAFE, 150)}", _neutral(v)),
    "slack_webhook": lambda g: (
        v := f"https://hooks.slack.com/services/T{g.s(UPPER_ALNUM, 8)}/B{g.s(UPPER_ALNUM, 10)}/{g.s(ALNUM, 24)}",
        f'curl -X POST -d \'{{"text":"done"}}\' {v}',
    ),
    "discord_webhook": lambda g: (
        v := f"https://discord.com/api/webhooks/{g.digits(18)}/{g.s(URLSAFE, 68)}",
        f"notify: {v}",
    ),
    "discord_bot_token": lambda g: (
        v := "M" + g.s(ALNUM, 25) + "." + g.s(URLSAFE, 6) + "." + g.s(URLSAFE, 38),
        f'client.run("{v}")  # the discord bot',
    ),
    "telegram_bot_token": _telegram,
    "teams_webhook": _teams,
    "google_chat_webhook": _google_chat,
    "zapier_webhook": lambda g: (
        v := f"https://hooks.zapier.com/hooks/catch/{g.digits(7)}/{g.s(LOWER_ALNUM, 7)}/",
        f"POST {v}",
    ),
    "mattermost_webhook": lambda g: (v := f"https://chat.example.com/hooks/{g.s(LOWER_ALNUM, 26)}", f"POST {v}"),
    "mattermost_token": _named("MATTERMOST_ACCESS_TOKEN={v}", lambda g: g.s(LOWER_ALNUM, 26)),
    "sendgrid_key": lambda g: (v := f"SG.{g.s(URLSAFE, 22)}.{g.s(URLSAFE, 43)}", _neutral(v)),
    "brevo_key": lambda g: (v := f"xkeysib-{g.s(HEX, 64)}-{g.s(ALNUM, 16)}", _neutral(v)),
    "mailgun_key": _shaped("key-", HEX, 32),
    "mailgun_signing_key": _named(
        "MAILGUN_WEBHOOK_SIGNING_KEY={v}", lambda g: f"{g.s(HEX, 32)}-{g.s(HEX, 8)}-{g.s(HEX, 8)}"
    ),
    "mailchimp_key": lambda g: (v := f"{g.s(HEX, 32)}-us{g.rng.randint(1, 21)}", _neutral(v)),
    "resend_key": lambda g: (v := f"re_{g.s(ALNUM, 8)}_{g.s(ALNUM, 24)}", _neutral(v)),
    "postmark_server_token": _named('"PostmarkServerToken": "{v}"', lambda g: g.uuid()),
    "twilio_api_key": _shaped("SK", HEX, 32),
    "twilio_auth_token": _named("TWILIO_AUTH_TOKEN={v}", _hexv(32)),
    "twitter_bearer_token": _twitter_bearer,
    "twitter_api_secret": _named("twitter_consumer_secret: {v}", _alnum(50)),
    "messagebird_key": _named("MESSAGEBIRD_API_KEY={v}", _alnum(25)),
    "sendbird_token": _named('"sendbird_api_token": "{v}"', _hexv(40)),
    # payments, commerce
    "stripe_live_secret_key": _shaped("sk_live_", ALNUM, 99),
    "stripe_restricted_key": _shaped("rk_live_", ALNUM, 99),
    "stripe_test_secret_key": _shaped("sk_test_", ALNUM, 24),
    "stripe_webhook_secret": _shaped("whsec_", ALNUM, 32),
    "shopify_access_token": _shaped("shpat_", HEX, 32),
    "shopify_shared_secret": _shaped("shpss_", HEX, 32),
    "square_access_token": _shaped("EAAA", URLSAFE, 60),
    "square_oauth_secret": _shaped("sq0csp-", URLSAFE, 43),
    "facebook_access_token": _shaped("EAAB", ALNUM, 150),
    "facebook_app_secret": _named("FACEBOOK_APP_SECRET={v}", _hexv(32)),
    "braintree_access_token": lambda g: (
        v := f"access_token$production${g.s(LOWER_ALNUM, 16)}${g.s(HEX, 32)}",
        _neutral(v),
    ),
    "razorpay_key": _shaped("rzp_live_", ALNUM, 14),
    "duffel_token": _shaped("duffel_live_", URLSAFE, 43),
    "easypost_key": _shaped("EZAK", ALNUM, 54),
    "shippo_token": _shaped("shippo_live_", HEX, 40),
    "flutterwave_secret_key": _shaped("FLWSECK_TEST-", HEX, 32, "-X"),
    "plaid_access_token": lambda g: (v := "access-production-" + g.uuid(), _neutral(v)),
    "plaid_secret": _named("PLAID_SECRET={v}", _hexv(30)),
    "hubspot_private_app_token": lambda g: (v := "pat-na1-" + g.uuid(), _neutral(v)),
    "lob_key": _shaped("live_", HEX, 35),
    "gocardless_token": _shaped("live_", ALNUM, 40),
    "mapbox_secret_token": lambda g: (v := f"sk.eyJ1Ijoi{g.s(ALNUM, 40)}.{g.s(URLSAFE, 22)}", _neutral(v)),
    "coinbase_api_secret": _named("COINBASE_API_SECRET={v}", _alnum(32)),
    "kraken_private_key": _named('kraken_private_key = "{v}"', lambda g: g.b64(64)),
    "kucoin_secret": _named("KUCOIN_SECRET={v}", lambda g: g.uuid()),
    "bittrex_secret": _named('bittrex_api_secret: "{v}"', _hexv(32)),
    # keyword families: no shape of their own, found by the name they are given
    "adafruit_io_key": _named("ADAFRUIT_IO_KEY={v}", lambda g: "aio_" + g.s(ALNUM, 28)),
    "algolia_admin_key": _named("ALGOLIA_ADMIN_KEY={v}", _hexv(32)),
    "asana_token": _asana,
    "beamer_api_key": _named("BEAMER_API_KEY=b_{v}", lambda g: g.s(URLSAFE, 44)),
    "cisco_meraki_key": _named("MERAKI_DASHBOARD_API_KEY={v}", _hexv(40)),
    "codecov_token": _named("CODECOV_TOKEN={v}", lambda g: g.uuid()),
    "confluent_secret": _named("confluent.api.secret={v}", _alnum(64)),
    "contentful_token": _named('contentful_delivery_token: "{v}"', lambda g: g.s(URLSAFE, 43)),
    "droneci_token": _named("DRONE_TOKEN={v}", _alnum(32)),
    "dropbox_short_lived_token": _named('DROPBOX_ACCESS_TOKEN="{v}"', lambda g: "sl." + g.s(URLSAFE, 135)),
    "etsy_key": _named("etsy_api_key = '{v}'", lambda g: g.s(LOWER_ALNUM, 24)),
    "fastly_api_token": _named("FASTLY_API_TOKEN={v}", lambda g: g.s(URLSAFE, 32)),
    "finnhub_token": _named("finnhub_token={v}", lambda g: g.s(LOWER_ALNUM, 20)),
    "flickr_key": _named("FLICKR_API_KEY={v}", _hexv(32)),
    "freshbooks_token": _named("FRESHBOOKS_ACCESS_TOKEN={v}", _hexv(64)),
    "gitter_token": _named("GITTER_TOKEN={v}", _hexv(40)),
    "launchdarkly_api_token": _named('ld_api_token: "{v}"', lambda g: "api-" + g.uuid()),
    "linkedin_client_secret": _named("LINKEDIN_CLIENT_SECRET={v}", _alnum(16)),
    "looker_client_secret": _named("LOOKERSDK_CLIENT_SECRET={v}", _alnum(24)),
    "nytimes_key": _named("NYTIMES_API_KEY={v}", _alnum(32)),
    "okta_api_token": _named("OKTA_API_TOKEN={v}", lambda g: "00" + g.s(URLSAFE, 40)),
    "rapidapi_key": _named("X-RapidAPI-Key: {v}", _alnum(50)),
    "snyk_token": _named("SNYK_TOKEN={v}", lambda g: g.uuid()),
    "squarespace_key": _named("SQUARESPACE_API_KEY={v}", lambda g: g.uuid()),
    "sumologic_access_key": _named("SUMO_ACCESS_KEY={v}", _alnum(64)),
    "travisci_token": _named("travis_token: {v}", _alnum(22)),
    "trello_token": _named("TRELLO_TOKEN={v}", _hexv(64)),
    "twitch_client_secret": _named("TWITCH_CLIENT_SECRET={v}", lambda g: g.s(LOWER_ALNUM, 30)),
    "zendesk_token": _named("ZENDESK_API_TOKEN={v}", _alnum(40)),
    "pagerduty_key": _named("PAGERDUTY_INTEGRATION_KEY={v}", _hexv(32)),
    "sidekiq_credentials": _named("BUNDLE_ENTERPRISE__CONTRIBSYS__COM={v}", lambda g: f"{g.s(HEX, 8)}:{g.s(HEX, 8)}"),
    "django_secret_key": _named("SECRET_KEY = '{v}'", lambda g: g.s(ALNUM + "!@#%^*(-_=+)", 50)),
    "rails_master_key": _named("RAILS_MASTER_KEY={v}", _hexv(32)),
    "laravel_app_key": _named("APP_KEY=base64:{v}", lambda g: g.b64(32)),
    # connection strings and URLs carrying credentials
    "postgres_url": _named("DATABASE_URL=postgres://app:{v}@db.internal:5432/app", _pw),
    "mysql_url": _named("mysql://root:{v}@127.0.0.1:3306/shop", _pw),
    "mongodb_srv_url": _named("mongodb+srv://admin:{v}@cluster0.ab1cd.mongodb.net/?retryWrites=true", _pw),
    "redis_url": _named("REDIS_URL=redis://:{v}@cache:6379/0", _alnum(24)),
    "amqp_url": _named("amqp://worker:{v}@rabbit:5672/jobs", _pw),
    "https_basic_url": _named("git clone https://deploy:{v}@git.example.com/team/app.git", _pw),
    "ftp_url": _named("lftp ftp://backup:{v}@ftp.example.com/", _pw),
    "smtp_url": _named("EMAIL_URL=smtp://mailer:{v}@smtp.example.com:587", _pw),
    "git_token_userinfo": _named("git push https://{v}@github.com/org/repo.git", lambda g: g.s(ALNUM, 40)),
    "jdbc_password_param": _named("jdbc:mysql://db:3306/app?user=app&password={v}&useSSL=true", _pw),
    "ado_net_connection_string": _named(
        "Server=tcp:demo.database.windows.net,1433;Initial Catalog=app;User ID=admin;Password={v};Encrypt=True;", _pw
    ),
    "odbc_connection_string": _named("Driver={{ODBC Driver 18 for SQL Server}};Server=db;Uid=sa;Pwd={v};", _pw),
    "redis_stackexchange_string": _named(
        "cache.redis.cache.windows.net:6380,password={v},ssl=True", lambda g: g.b64(32)
    ),
    "url_query_access_token": _named("GET https://api.example.com/v1/items?access_token={v}&page=2", _alnum(40)),
    "url_query_api_key": _named("https://maps.example.com/geocode?address=Paris&api_key={v}", _alnum(32)),
    # assignments in every notation
    "env_password": _named("DB_PASSWORD={v}", _pw),
    "env_export_token": _named("export API_TOKEN={v}", _alnum(32)),
    "env_prefixed_command": _named("PGPASSWORD={v} psql -h db -U app", _pw),
    "dotenv_quoted_secret": _named('SESSION_SECRET="{v}"', _pw),
    "json_password": _named('{{"username": "app", "password": "{v}"}}', _pw),
    "json_client_secret": _named('{{"client_id": "web", "client_secret": "{v}"}}', _alnum(40)),
    "yaml_password": _named("database:\n  host: db\n  password: {v}\n", _pw),
    "yaml_quoted_secret": _named("auth:\n  secret: '{v}'\n", _pw),
    "toml_token": _named('[registry]\ntoken = "{v}"\n', _alnum(32)),
    "ini_password": _named("[mysql]\nuser = app\npassword = {v}\n", _pw),
    "hcl_secret": _named('variable "x" {{}}\nsecret_key = "{v}"\n', _alnum(40)),
    "properties_password": _named("spring.datasource.password={v}\n", _pw),
    "python_kwarg_password": _named('conn = psycopg.connect(host="db", password="{v}")', _pw),
    "python_environ_assignment": _named('os.environ["SERVICE_API_KEY"] = "{v}"', _alnum(32)),
    "python_setenv_call": _named('monkeypatch.setenv("AUTH_TOKEN", "{v}")', _alnum(32)),
    "js_object_api_key": _named("const config = {{ apiKey: '{v}', region: 'eu' }};", _alnum(32)),
    "go_struct_password": _named('cfg := Config{{\n\tUser:     "app",\n\tPassword: "{v}",\n}}', _pw),
    "ruby_hash_password": _named('{{ :username => "app", :password => "{v}" }}', _pw),
    "php_array_password": _named("'db_password' => '{v}',", _pw),
    "xml_password_element": _named("<password>{v}</password>", _pw),
    "nuget_cleartext_password": _named('<add key="ClearTextPassword" value="{v}" />', _pw),
    "dockerfile_env_token": _named("ENV NPM_TOKEN={v}", _alnum(36)),
    "docker_run_env_password": _named("docker run -e POSTGRES_PASSWORD={v} -d postgres:16", _pw),
    "kubernetes_secret_manifest": _k8s_secret,
    "kubeconfig_token": _named("users:\n- name: admin\n  user:\n    token: {v}\n", lambda g: g.s(URLSAFE, 64)),
    "kubeconfig_client_key_data": _named("    client-key-data: {v}\n", lambda g: g.b64(90)),
    "github_actions_secret_echo": _named("echo 'GH_TOKEN={v}' >> $GITHUB_ENV", _alnum(40)),
    # command lines
    "cli_password_flag": _named("pg_dump --host db --password {v} app", _pw),
    "cli_token_equals": _named("terraform login --token={v}", _alnum(40)),
    "cli_api_key_flag": _named("llm keys set --api-key {v}", _alnum(40)),
    "mysql_p_flag": _named("mysql -u root -p{v} shop < dump.sql", _pw),
    "sshpass_p": _named("sshpass -p '{v}' ssh deploy@host", _pw),
    "redis_cli_a": _named("redis-cli -h cache -a {v} ping", _alnum(24)),
    "curl_user_password": _named("curl -u admin:{v} https://ci.example.com/api/json", _pw),
    "docker_login_p": _named("docker login -u deployer --password {v} registry.example.com", _pw),
    # HTTP
    "bearer_header": _named('curl -H "Authorization: Bearer {v}" https://api.example.com/me', _alnum(40)),
    "basic_auth_header": _basic_header,
    "x_api_key_header": _named("X-API-Key: {v}", _alnum(32)),
    "gitlab_private_token_header": _named(
        'curl --header "PRIVATE-TOKEN: {v}" https://gitlab.example.com/api/v4/projects', _alnum(20)
    ),
    "session_cookie": _named("Cookie: sessionid={v}; theme=dark", lambda g: g.s(LOWER_ALNUM, 32)),
    "set_cookie_auth": _named("Set-Cookie: auth_token={v}; Path=/; HttpOnly", _alnum(40)),
    "netrc_password": _named("machine api.example.com\n  login deployer\n  password {v}\n", _pw),
    # prose
    "prose_password": _named("the admin password is {v} so use that", _pw),
    "prose_token_colon": _named("my api token: {v}", _alnum(32)),
    "prose_key_bare": _named("here is the key {v} for staging", _alnum(40)),
}


def secrets(seed: int = 0) -> list[Item]:
    """One item per secret kind (>= 150), in a fixed order."""
    g = _Gen(random.Random(seed))
    return [Item(kind, *make(g)) for kind, make in SECRET_KINDS.items()]


# -- look-alikes ----------------------------------------------------------------------------------


def _same(text_of: Callable[[_Gen], str]) -> Callable[[_Gen], tuple[str, str]]:
    """A look-alike whose whole text must stay."""

    def make(g: _Gen) -> tuple[str, str]:
        text = text_of(g)
        return text, text

    return make


def _png_b64(g: _Gen) -> str:
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + g.rng.randbytes(150)).decode()


LOOKALIKE_KINDS: dict[str, Callable[[_Gen], tuple[str, str]]] = {
    "git_commit_sha": lambda g: (v := g.s(HEX, 40), f"commit {v}\nAuthor: Ada <ada@example.com>"),
    "git_short_sha": lambda g: (v := g.s(HEX, 7), f"{v} Fix token refresh (#42)"),
    "git_sha_near_key_word": lambda g: (v := g.s(HEX, 40), f"Merge: the key change landed in {v}"),
    "sha256_digest_docker": lambda g: (v := "sha256:" + g.s(HEX, 64), f"image digest {v}"),
    "sha256sum_output": lambda g: (v := g.s(HEX, 64), f"{v}  release.tar.gz"),
    "md5sum_output": lambda g: (v := g.s(HEX, 32), f"{v}  data.csv"),
    "sha1_etag": lambda g: (v := g.s(HEX, 40), f'ETag: "{v}"'),
    "uuid_request_id": lambda g: (v := g.uuid(), f"request id {v} failed"),
    "uuid_in_url": lambda g: (v := g.uuid(), f"GET /api/items/{v}/history"),
    "uuid_idempotency_key": lambda g: (v := g.uuid(), f'idempotency_key = "{v}"'),
    "npm_lock_integrity": lambda g: (v := "sha512-" + g.b64(64), f'"integrity": "{v}",'),
    "yarn_lock_resolved": lambda g: (
        v := f"https://registry.yarnpkg.com/left-pad/-/left-pad-1.3.0.tgz#{g.s(HEX, 40)}",
        f'  resolved "{v}"',
    ),
    "pip_requirements_hash": lambda g: (v := "sha256:" + g.s(HEX, 64), f"requests==2.32.3 --hash={v}"),
    "cargo_lock_checksum": lambda g: (v := g.s(HEX, 64), f'checksum = "{v}"'),
    "go_sum_hash": lambda g: (v := "h1:" + g.b64(32), f"golang.org/x/text v0.14.0 {v}"),
    "poetry_lock_hash": lambda g: (v := "sha256:" + g.s(HEX, 64), f'{{file = "x-1.0-py3-none-any.whl", hash = "{v}"}}'),
    "data_uri_png": lambda g: (v := "data:image/png;base64," + _png_b64(g), f'<img src="{v}">'),
    "base64_image_json": lambda g: (v := _png_b64(g), json.dumps({"type": "image", "data": v})),
    "css_hex_colour": _same(
        lambda g: f"color: #{g.s('0123456789abcdef', 6)}; background: #{g.s('0123456789ABCDEF', 3)};"
    ),
    "css_rgba": _same(lambda g: f"box-shadow: 0 1px 2px rgba({g.rng.randint(0, 255)}, 10, 20, 0.5);"),
    "long_identifier": _same(
        lambda g: "AbstractSingletonProxyFactoryBean.getObjectInstanceForTokenizerConfiguration()"
    ),
    "secret_word_identifiers": _same(
        lambda g: "def reset_password_token_expiry(user):\n    return user.password_reset_token_expires_at"
    ),
    "env_reference": _same(lambda g: "DB_PASSWORD=${DB_PASSWORD}"),
    "environ_read": _same(lambda g: 'password = os.environ["DB_PASSWORD"]'),
    "placeholder_value": _same(lambda g: "OPENAI_API_KEY=<your-api-key>"),
    "masked_value": _same(lambda g: "password: ********"),
    "max_tokens_setting": _same(lambda g: f"MAX_TOKENS={g.rng.randint(1000, 9000)}"),
    "token_count_json": _same(lambda g: f'"input_tokens": {g.rng.randint(100, 99999)}, "output_tokens": 12'),
    "tool_use_id": lambda g: (v := "toolu_01" + g.s(ALNUM, 22), f'"tool_use_id": "{v}"'),
    "api_message_id": lambda g: (v := "msg_01" + g.s(ALNUM, 22), f"message {v}"),
    "api_request_id": lambda g: (v := "req_011C" + g.s(ALNUM, 20), f"request-id: {v}"),
    "ssh_public_key": lambda g: (
        v := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + g.b64(32).rstrip("="),
        "deploy key: " + v + " ci@example",
    ),
    "x509_certificate": lambda g: g.pem("CERTIFICATE"),
    "aws_arn": _same(lambda g: f"arn:aws:iam::{g.digits(12)}:role/deploy-role"),
    "iso_timestamp": _same(lambda g: "2026-11-21T20:15:48.485Z"),
    "hashed_asset_name": lambda g: (v := f"main.{g.s(HEX, 8)}.js", f'<script src="/static/{v}"></script>'),
    "email_address": _same(lambda g: "Contact ada.lovelace@example.com for access."),
    "ipv6_address": _same(lambda g: "listening on [2001:db8::ff00:42:8329]:8080"),
    "mac_address": _same(lambda g: "ether 00:1a:2b:3c:4d:5e"),
    "secret_field_name_literal": _same(lambda g: 'password_field = "password"'),
    "token_url_setting": _same(lambda g: 'TOKEN_URL = "https://oauth2.googleapis.com/token"'),
    "jwt_header_only": _same(lambda g: "eyJhbGciOiJIUzI1NiJ9 is only a JWT header"),
    "bearer_in_prose": _same(lambda g: "Bearer authentication is described in RFC 6750."),
    "python_type_annotation": _same(lambda g: "    password: str = None\n    token: Optional[str] = None"),
    "ssh_git_remote": _same(lambda g: "git@github.com:anthropics/claude-code.git"),
    "kubernetes_configmap": _same(lambda g: "kind: ConfigMap\ndata:\n  LOG_LEVEL: debug\n  WORKERS: '4'"),
    "model_id": _same(lambda g: "model: claude-opus-5-5"),
    "semver_and_build": _same(lambda g: "version 1.24.3+build.20261121"),
    "cache_key_value": _same(lambda g: 'cache_key = f"user:{user_id}:profile"'),
    "password_policy_setting": _same(lambda g: "PASSWORD_MIN_LENGTH=12"),
    # seen in real sessions: numbers, phrases and code next to secret words
    "token_usage_counts": _same(lambda g: f"<usage>total_tokens: {g.digits(5)}\ntool_uses: 3</usage>"),
    "numeric_setting_with_token_name": _same(lambda g: "self.token_duration = 2.5  # seconds"),
    "label_pair_with_token_name": _same(lambda g: "('mean_std_per_token', 'Mean Std per Token'),"),
    "format_string_with_token": _same(lambda g: "print(f\"--- Token {i+1}/{len(tokens)}: '{token}'\")"),
    "object_shorthand_token": _same(lambda g: "params: { _csrf_token: csrfToken },"),
    "docstring_token_word": _same(lambda g: '"""Process a single token: embed, visualise, play."""'),
    "short_word_token_literal": _same(lambda g: 'test_token = "music"'),
}


def lookalikes(seed: int = 0) -> list[Item]:
    """One item per look-alike kind (>= 30), in a fixed order."""
    g = _Gen(random.Random(seed + 1))
    return [Item(kind, *make(g)) for kind, make in LOOKALIKE_KINDS.items()]


def all_strings(value: Any, out: list[str] | None = None) -> list[str]:
    """Every string in a JSON-like value, with JSON held inside strings (tool arguments, tool lists,
    stored columns) decoded and walked too: what a check for a planted value must look through."""
    out = [] if out is None else out
    if isinstance(value, str):
        out.append(value)
        if value[:1] in "[{":
            try:
                all_strings(json.loads(value), out)
            except ValueError:
                pass
    elif isinstance(value, dict):
        for v in value.values():
            all_strings(v, out)
    elif isinstance(value, list):
        for v in value:
            all_strings(v, out)
    return out


# -- planting into recorded sessions --------------------------------------------------------------

PLACES = (
    "prompt",
    "bash_output",
    "read_output",
    "grep_output",
    "write_input",
    "edit_input",
    "bash_command",
    "thinking",
    "final_text",
    "subagent",
    "tool_schema",
)


def plant(recorded: Path, out: Path, items: list[Item]) -> dict[str, list[str]]:
    """Copy recorded scenarios `tools` and `subagent` from `recorded` to `out` with `items` planted
    into their transcripts, spread round-robin over PLACES. Returns place -> kinds planted there.

    The hook events are copied as recorded: the dataset reads the transcripts' side."""
    shutil.copytree(recorded / "tools", out / "tools")
    shutil.copytree(recorded / "subagent", out / "subagent")
    by_place: dict[str, list[Item]] = {p: [] for p in PLACES}
    for i, item in enumerate(items):
        by_place[PLACES[i % len(PLACES)]].append(item)
    blocks = {p: "\n\n" + "\n\n".join(it.text for it in its) + "\n" for p, its in by_place.items()}

    main = next((out / "tools" / "transcripts").glob("*/*.jsonl"))
    _rewrite(main, blocks, subagent=False)
    agent = next((out / "subagent" / "transcripts").glob("*/*/subagents/agent-*.jsonl"))
    _rewrite(agent, blocks, subagent=True)
    return {p: [it.kind for it in its] for p, its in by_place.items()}


def _rewrite(path: Path, blocks: dict[str, str], subagent: bool) -> None:
    entries = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    tool_names: dict[str, str] = {}
    done: set[str] = set()

    def once(place: str) -> bool:
        if place in done:
            return False
        done.add(place)
        return True

    for e in entries:
        message = e.get("message") if isinstance(e.get("message"), dict) else None
        content = message.get("content") if message else None
        if subagent:
            # A subagent's own assistant text carries the subagent block.
            if e.get("type") == "assistant" and isinstance(content, list):
                for b in content:
                    if b.get("type") == "text" and once("subagent"):
                        b["text"] += blocks["subagent"]
            continue
        if e.get("type") == "api-request-shape" and once("tool_schema"):
            tools = (e.get("shape") or {}).get("tools") or []
            if tools:
                tools[0]["description"] = tools[0].get("description", "") + blocks["tool_schema"]
        if e.get("type") == "user" and message is not None and isinstance(content, str) and once("prompt"):
            message["content"] = content + blocks["prompt"]
        if e.get("type") == "assistant" and isinstance(content, list):
            for b in content:
                if b.get("type") == "tool_use":
                    tool_names[b["id"]] = b["name"]
                    inp = b.get("input") or {}
                    if b["name"] == "Write" and once("write_input"):
                        inp["content"] += blocks["write_input"]
                    elif b["name"] == "Edit" and once("edit_input"):
                        inp["new_string"] += blocks["edit_input"]
                    elif b["name"] == "Bash" and once("bash_command"):
                        inp["command"] += "\n" + blocks["bash_command"]
                elif b.get("type") == "thinking" and once("thinking"):
                    b["thinking"] += blocks["thinking"]
        if e.get("type") == "user" and isinstance(content, list):
            for b in content:
                if b.get("type") != "tool_result":
                    continue
                place = {"Bash": "bash_output", "Read": "read_output", "Grep": "grep_output"}.get(
                    tool_names.get(b.get("tool_use_id"), "")
                )
                if place and once(place):
                    if isinstance(b.get("content"), str):
                        b["content"] += blocks[place]
                    elif isinstance(b.get("content"), list):
                        b["content"].append({"type": "text", "text": blocks[place]})
    # The final text: the last assistant text block of the main thread.
    if not subagent:
        for e in reversed(entries):
            content = (e.get("message") or {}).get("content") if e.get("type") == "assistant" else None
            if isinstance(content, list) and any(b.get("type") == "text" for b in content):
                next(b for b in content if b.get("type") == "text")["text"] += blocks["final_text"]
                done.add("final_text")
                break
    missing = [p for p in PLACES if p not in done and (p == "subagent") == subagent]
    if missing:
        raise ValueError(f"{path}: no place for {missing}: the recording changed shape")
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries), encoding="utf-8")
