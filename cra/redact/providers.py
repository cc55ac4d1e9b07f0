"""Credentials with a shape of their own: a provider's documented prefix, alphabet and length.

Each rule is written from the provider's own description of its token format (the prefix a key
starts with, the characters and length that follow), so a rule finds its token wherever it
appears: a prompt, a `cat .env`, a curl header, a thinking block. Tokens with no distinctive shape
(a 32-character hex string that is some provider's key) are left to the context rules in
`context.py`, which recognise them by the name they are assigned to or the word that introduces
them.

`keywords`: lowercase literals, one of which appears (lowercased) in any text the rule can match;
a text without any is never searched with that rule (a substring test is ~100x cheaper than a
regex pass). A keyword is part of the token itself, so it is looked for only in the text's long
words (16+ characters between whitespace: a prose answer has none), unless it holds a space or the
rule says `near` (the keyword is a word next to the token, not in it). `random`: the match must
also look random (digits and letters mixed), for shapes an ordinary identifier could take.
"""

from __future__ import annotations

from dataclasses import dataclass

# Token boundaries: a token starts and ends where the token alphabet does.
_B = r"(?<![A-Za-z0-9])"
_E = r"(?![A-Za-z0-9_\-])"
_HEX = "[a-f0-9]"
_UUID = r"[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}"


@dataclass(frozen=True)
class TokenRule:
    kind: str
    pattern: str
    keywords: tuple[str, ...]
    random: bool = False
    near: bool = False


def _rule(kind: str, pattern: str, *keywords: str, random: bool = False, near: bool = False) -> TokenRule:
    return TokenRule(kind, pattern, tuple(k.lower() for k in keywords), random, near)


# Order matters only where two shapes overlap: the first rule's kind names the replacement.
TOKEN_RULES: tuple[TokenRule, ...] = (
    # -- key material --------------------------------------------------------------------------
    _rule(
        "private_key",
        # PEM (PKCS#1/#8, EC, DSA, encrypted), OpenSSH and PGP private blocks; an unterminated block
        # (a truncated `cat`) runs to the end of the text. In JSON the newlines are `\n` escapes.
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?:.|\n)*?"
        r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)",
        "private key",
    ),
    _rule(
        "private_key",
        # PuTTY .ppk: everything from the header through the private lines and the MAC.
        r"PuTTY-User-Key-File-\d: [^\n]*(?:.|\n)*?(?:Private-MAC: [a-f0-9]+|\Z)",
        "putty-user-key-file",
    ),
    _rule("age_secret_key", r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}", "age-secret-key-1"),
    _rule(
        "password_hash",
        # crypt(3)-style hashes (bcrypt, md5-crypt, sha-crypt, yescrypt, argon2): /etc/shadow, htpasswd, seeds.
        r"(?<![A-Za-z0-9$])\$(?:2[abxy]|apr1|1|5|6|y|gy|7|argon2(?:id|i|d))\$[A-Za-z0-9./=,$+\-]{20,}",
        "$2a$",
        "$2b$",
        "$2y$",
        "$apr1$",
        "$1$",
        "$5$",
        "$6$",
        "$y$",
        "$gy$",
        "$7$",
        "$argon2",
    ),
    _rule(
        "jwt",
        r"(?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
        "eyj",
    ),
    # -- AI providers -------------------------------------------------------------------------
    _rule("anthropic_key", _B + r"sk-ant-(?:api|admin|sid|oat)\d{2}-[A-Za-z0-9_\-]{20,}", "sk-ant-"),
    _rule("openrouter_key", _B + r"sk-or-v1-[a-f0-9]{64}" + _E, "sk-or-v1-"),
    # OpenAI (sk-, sk-proj-, sk-svcacct-, sk-admin-), and the sk-<hex> keys of others (DeepSeek, ...)
    _rule("openai_key", _B + r"sk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{20,}", "sk-"),
    _rule("groq_key", _B + r"gsk_[A-Za-z0-9]{52}" + _E, "gsk_"),
    _rule("xai_key", _B + r"xai-[A-Za-z0-9]{60,90}" + _E, "xai-"),
    _rule("perplexity_key", _B + r"pplx-[A-Za-z0-9]{48}" + _E, "pplx-"),
    _rule("huggingface_token", _B + r"(?:hf_|api_org_)[A-Za-z0-9]{30,}" + _E, "hf_", "api_org_"),
    _rule("replicate_token", _B + r"r8_[A-Za-z0-9]{37}" + _E, "r8_"),
    _rule("langsmith_key", _B + r"lsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}" + _E, "lsv2_"),
    _rule("pinecone_key", _B + r"pcsk_[A-Za-z0-9_]{40,}" + _E, "pcsk_"),
    _rule("tavily_key", _B + r"tvly-(?:dev-|prod-)?[A-Za-z0-9]{24,}" + _E, "tvly-"),
    _rule("fireworks_key", _B + r"fw_[A-Za-z0-9]{24,}" + _E, "fw_", random=True),
    # -- cloud ----------------------------------------------------------------------------------
    _rule(
        "aws_access_key_id",
        r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA|AROA|AIDA|AIPA|ANPA|ANVA|APKA|AGPA)[0-9A-Z]{16}(?![A-Za-z0-9])",
        "akia",
        "asia",
        "abia",
        "acca",
        "aroa",
        "aida",
        "aipa",
        "anpa",
        "anva",
        "apka",
        "agpa",
    ),
    _rule(
        "aws_bedrock_key",
        r"(?<![A-Za-z0-9])(?:ABSK|bedrock-api-key-)[A-Za-z0-9+/]{60,}={0,2}",
        "absk",
        "bedrock-api-key-",
    ),
    _rule("google_api_key", r"(?<![A-Za-z0-9])AIza[0-9A-Za-z_\-]{35}", "aiza"),
    _rule("google_oauth", r"(?<![A-Za-z0-9])ya29\.[0-9A-Za-z_\-]{20,}", "ya29."),
    _rule("google_oauth", _B + r"GOCSPX-[0-9A-Za-z_\-]{20,}", "gocspx-"),
    _rule("google_oauth", r"(?<![A-Za-z0-9/])1//0[0-9A-Za-z_\-]{40,}", "1//0"),
    _rule(
        "firebase_fcm_key",
        _B + r"AAAA[A-Za-z0-9_\-]{7}:APA91b[A-Za-z0-9_\-]{100,}",
        ":apa91b",
    ),
    _rule(
        "azure_client_secret",
        # Entra ID client secrets: three characters, a digit, `Q~`, then 31-34 more.
        r"(?<![A-Za-z0-9_~.\-])[A-Za-z0-9_~.\-]{3}\dQ~[A-Za-z0-9_~.\-]{31,34}(?![A-Za-z0-9_~.\-])",
        "q~",
    ),
    _rule("alibaba_access_key_id", _B + r"LTAI[A-Za-z0-9]{12,20}" + _E, "ltai", random=True),
    _rule(
        "yandex_key",
        _B + r"(?:AQVN[A-Za-z0-9_\-]{35,38}|YC[A-Za-z0-9_\-]{38}|y[0-3]_[A-Za-z0-9_\-]{55})" + _E,
        "aqvn",
        "yc",
        "y0_",
        "y1_",
        "y2_",
        "y3_",
        random=True,
    ),
    _rule("digitalocean_token", _B + r"do[opr]_v1_[a-f0-9]{64}" + _E, "_v1_"),
    _rule("databricks_token", _B + r"dapi[a-f0-9]{32}(?:-\d)?" + _E, "dapi"),
    _rule("clickhouse_key", _B + r"4b1d[A-Za-z0-9]{38}" + _E, "4b1d"),
    _rule("cloudflare_origin_ca_key", _B + r"v1\.0-[a-f0-9]{24}-[a-f0-9]{146}" + _E, "v1.0-"),
    _rule("flyio_token", _B + r"(?:fo1_[A-Za-z0-9_\-]{43}|fm[12][ar]?_[A-Za-z0-9+/]{60,}={0,3})", "fo1_", "fm1", "fm2"),
    _rule("heroku_key", _B + r"HRKU-[A-Za-z0-9_\-]{20,}", "hrku-"),
    _rule("netlify_token", _B + r"nfp_[A-Za-z0-9]{36,40}" + _E, "nfp_"),
    _rule("vercel_token", _B + r"vc[pkiar]_[A-Za-z0-9]{40,60}" + _E, "vcp_", "vck_", "vci_", "vca_", "vcr_"),
    _rule("render_key", _B + r"rnd_[A-Za-z0-9]{28,40}" + _E, "rnd_", random=True),
    _rule(
        "supabase_key", _B + r"(?:sb[pa]_[a-f0-9]{40}|sb_secret_[A-Za-z0-9_\-]{30,})" + _E, "sbp_", "sba_", "sb_secret_"
    ),
    _rule("neon_key", _B + r"napi_[a-z0-9]{64}" + _E, "napi_"),
    _rule("planetscale_token", _B + r"pscale_(?:tkn|oauth|pw)_[A-Za-z0-9_\-=.]{32,64}", "pscale_"),
    _rule("scalingo_token", _B + r"tk-us-[A-Za-z0-9_\-]{48}" + _E, "tk-us-"),
    _rule("openshift_token", _B + r"sha256~[A-Za-z0-9_\-]{43}" + _E, "sha256~"),
    _rule("vault_token", _B + r"hv[sbr]\.[A-Za-z0-9_\-]{24,300}", "hvs.", "hvb.", "hvr."),
    _rule("terraform_token", _B + r"[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_\-=]{60,70}", "atlasv1"),
    _rule("pulumi_token", _B + r"pul-[a-f0-9]{40}" + _E, "pul-"),
    _rule("doppler_token", _B + r"dp\.(?:pt|st|ct|sa|scim|audit)\.[A-Za-z0-9]{40,44}" + _E, "dp."),
    _rule("infracost_key", _B + r"ico-[A-Za-z0-9]{32}" + _E, "ico-"),
    _rule("defined_networking_token", _B + r"dnkey-[a-z0-9=_\-]{26}-[a-z0-9=_\-]{52}" + _E, "dnkey-"),
    _rule("dynatrace_token", _B + r"dt0c01\.[A-Z0-9]{24}\.[A-Z0-9]{64}" + _E, "dt0c01."),
    _rule(
        "newrelic_key",
        _B + r"NR(?:AK|II|JS|AA|RA)-[A-Za-z0-9]{19,32}" + _E,
        "nrak-",
        "nrii-",
        "nrjs-",
        "nraa-",
        "nrra-",
    ),
    _rule("grafana_token", r"(?<![A-Za-z0-9])eyJrIjoi[A-Za-z0-9+/]{50,}={0,2}", "eyjrijoi"),
    _rule(
        "grafana_token", _B + r"(?:glc_[A-Za-z0-9+/]{32,}={0,2}|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8})", "glc_", "glsa_"
    ),
    _rule(
        "sentry_token",
        _B + r"(?:sntryu_[a-f0-9]{64}|sntrys_eyJ[A-Za-z0-9_\-=+/]{40,})",
        "sntryu_",
        "sntrys_",
    ),
    # -- code hosting, CI, registries ---------------------------------------------------------
    _rule("github_token", _B + r"gh[pousr]_[A-Za-z0-9]{36,255}" + _E, "ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
    _rule("github_token", _B + r"github_pat_[A-Za-z0-9_]{22,255}" + _E, "github_pat_"),
    _rule(
        "gitlab_token",
        _B + r"(?:(?:glpat|glptt|glrt|glrtr|gldt|glcbt|glffct|glft|glimt|glagent|gloas|glsoat|glwt)-"
        r"[A-Za-z0-9_\-.]{20,}|GR1348941[A-Za-z0-9_\-]{20,})",
        "glpat-",
        "glptt-",
        "glrt-",
        "glrtr-",
        "gldt-",
        "glcbt-",
        "glffct-",
        "glft-",
        "glimt-",
        "glagent-",
        "gloas-",
        "glsoat-",
        "glwt-",
        "gr1348941",
    ),
    _rule("bitbucket_token", _B + r"(?:ATBB|ATCTT3)[A-Za-z0-9_\-=]{28,}", "atbb", "atctt3"),
    _rule("atlassian_token", _B + r"ATATT3[A-Za-z0-9_\-=]{100,}", "atatt3"),
    _rule("npm_token", _B + r"npm_[A-Za-z0-9]{36}" + _E, "npm_"),
    _rule("pypi_token", _B + r"pypi-AgE[A-Za-z0-9_\-]{50,}", "pypi-"),
    _rule("rubygems_key", _B + r"rubygems_[a-f0-9]{48}" + _E, "rubygems_"),
    _rule("clojars_token", _B + r"CLOJARS_[a-z0-9]{60}" + _E, "clojars_"),
    _rule("docker_token", _B + r"dckr_(?:pat|oat)_[A-Za-z0-9_\-]{27,}", "dckr_"),
    _rule(
        "artifactory_token",
        r"(?<![A-Za-z0-9])(?:AKCp[A-Za-z0-9]{69}|cmVmd[A-Za-z0-9]{59})(?![A-Za-z0-9])",
        "akcp",
        "cmvmd",
    ),
    _rule("circleci_token", _B + r"CCIPAT_[A-Za-z0-9]{22}_[a-f0-9]{40}" + _E, "ccipat_"),
    _rule("buildkite_token", _B + r"bkua_[a-f0-9]{40}" + _E, "bkua_"),
    _rule("sonar_token", _B + r"sq[uap]_[a-f0-9]{40}" + _E, "squ_", "sqp_", "sqa_"),
    _rule(
        "sourcegraph_token", _B + r"(?:sgp_(?:[a-f0-9]{16}_|local_)?[a-f0-9]{40}|sgs_[a-f0-9]{64})" + _E, "sgp_", "sgs_"
    ),
    _rule("octopus_key", _B + r"API-[A-Z0-9]{26,32}" + _E, "api-", random=True),
    _rule(
        "harness_token", _B + r"(?:pat|sat)\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{20}" + _E, "pat.", "sat."
    ),
    _rule("prefect_key", _B + r"pnu_[A-Za-z0-9]{36}" + _E, "pnu_"),
    _rule("postman_key", _B + r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}" + _E, "pmak-"),
    _rule("readme_key", _B + r"rdme_[a-z0-9]{70}" + _E, "rdme_"),
    _rule("figma_token", _B + r"figd_[A-Za-z0-9_\-]{40,}", "figd_"),
    _rule("linear_key", _B + r"lin_(?:api|oauth)_[A-Za-z0-9]{40}" + _E, "lin_"),
    _rule("notion_token", _B + r"(?:ntn_[0-9]{11}[A-Za-z0-9]{32,36}|secret_[A-Za-z0-9]{43})" + _E, "ntn_", "secret_"),
    _rule("airtable_token", _B + r"pat[A-Za-z0-9]{14}\.[a-f0-9]{64}" + _E, "pat"),
    _rule("adobe_client_secret", _B + r"p8e-[A-Za-z0-9_\-]{32}" + _E, "p8e-"),
    _rule("frameio_token", _B + r"fio-u-[A-Za-z0-9_\-=]{64}" + _E, "fio-u-"),
    _rule("typeform_token", _B + r"tfp_[A-Za-z0-9_\-=.]{59,}", "tfp_"),
    _rule("intra42_secret", _B + r"s-s4t2(?:ud|af)-[a-f0-9]{64}" + _E, "s-s4t2"),
    _rule("onepassword_token", _B + r"ops_eyJ[A-Za-z0-9_\-+/]{100,}={0,2}", "ops_eyj"),
    _rule(
        "onepassword_secret_key",
        _B + r"A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}" + _E,
        "a3-",
    ),
    _rule("maxmind_key", _B + r"[A-Za-z0-9]{6}_[A-Za-z0-9]{29}_mmk" + _E, "_mmk"),
    _rule("settlemint_token", _B + r"sm_(?:pat|aat|sat)_[A-Za-z0-9]{16}" + _E, "sm_pat_", "sm_aat_", "sm_sat_"),
    _rule("launchdarkly_key", _B + r"(?:api|sdk|mob)-" + _UUID + _E, "api-", "sdk-", "mob-"),
    # -- chat, mail, messaging ----------------------------------------------------------------
    _rule("slack_token", _B + r"xox(?:[abposre]|e\.xox[bp])-(?:\d+-)?[A-Za-z0-9\-]{10,}", "xox"),
    _rule("slack_token", _B + r"xapp-\d-[A-Z0-9]+-\d+-[A-Za-z0-9]+" + _E, "xapp-"),
    _rule(
        "webhook_url",
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/]{20,}",
        "hooks.slack.com",
    ),
    _rule(
        "webhook_url",
        r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\d+/[A-Za-z0-9_\-]{30,}",
        "discord",
    ),
    _rule(
        "webhook_url",
        # Microsoft Teams incoming webhooks (the path carries the credential).
        r"https://[A-Za-z0-9\-.]*(?:webhook\.office\.com/webhookb2|outlook\.office(?:365)?\.com/webhook)/[^\s\"'<>]+",
        "webhook.office.com",
        "outlook.office",
    ),
    _rule("webhook_url", r"https://hooks\.zapier\.com/hooks/catch/\d+/[A-Za-z0-9]+/?", "hooks.zapier.com"),
    _rule("webhook_url", r"maker\.ifttt\.com/(?:trigger/[^/\s]+/with/)?key/[A-Za-z0-9_\-]{16,}", "ifttt"),
    _rule("webhook_url", r"https?://[A-Za-z0-9.\-]+(?::\d+)?/hooks/[a-z0-9]{26}(?![A-Za-z0-9])", "/hooks/"),
    _rule(
        "discord_bot_token",
        r"(?<![A-Za-z0-9_\-.])[MNO][A-Za-z0-9_\-]{23,27}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,40}(?![A-Za-z0-9_\-])",
        "discord",
        near=True,
    ),
    _rule("telegram_bot_token", r"(?<![0-9])\d{8,10}:AA[A-Za-z0-9_\-]{33}(?![A-Za-z0-9_\-])", ":aa"),
    _rule("sendgrid_key", _B + r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}" + _E, "sg."),
    _rule("brevo_key", _B + r"x(?:keysib|smtpsib)-[a-f0-9]{64}-[A-Za-z0-9]{16}" + _E, "keysib-", "smtpsib-"),
    _rule("mailgun_key", _B + r"(?:pub)?key-[a-f0-9]{32}" + _E, "key-"),
    _rule("mailchimp_key", _B + r"[a-f0-9]{32}-us\d{1,2}" + _E, "-us"),
    _rule("resend_key", _B + r"re_[A-Za-z0-9]{8}_[A-Za-z0-9]{24}" + _E, "re_"),
    _rule("twilio_key", r"(?<![A-Za-z0-9])SK[a-f0-9]{32}(?![A-Za-z0-9])", "sk"),
    _rule("twitter_bearer_token", r"(?<![A-Za-z0-9])A{20,22}[A-Za-z0-9%]{30,}", "aaaaaaaaaaaaaaaaaaaa"),
    # -- payments, commerce -------------------------------------------------------------------
    _rule("stripe_key", _B + r"(?:sk|rk|pk)_(?:live|test|prod)_[A-Za-z0-9]{16,}" + _E, "_live_", "_test_", "_prod_"),
    _rule("stripe_key", _B + r"whsec_[A-Za-z0-9]{24,}" + _E, "whsec_"),
    _rule("shopify_token", _B + r"shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}" + _E, "shp"),
    _rule(
        "square_token", _B + r"(?:sq0(?:atp|csp|idp)-[A-Za-z0-9_\-]{22,43}|EAAA[A-Za-z0-9_\-]{60})" + _E, "sq0", "eaaa"
    ),
    _rule("facebook_token", r"(?<![A-Za-z0-9])EAA[BCDGIMUZ][A-Za-z0-9]{30,}", "eaa"),
    _rule(
        "braintree_token",
        r"access_token\$(?:production|sandbox)\$[a-z0-9]{16}\$[a-f0-9]{32}",
        "access_token$",
    ),
    _rule("razorpay_key", _B + r"rzp_(?:live|test)_[A-Za-z0-9]{14}" + _E, "rzp_"),
    _rule("duffel_token", _B + r"duffel_(?:test|live)_[A-Za-z0-9_\-=]{43}" + _E, "duffel_"),
    _rule("easypost_key", _B + r"EZ[AT]K[A-Za-z0-9]{54}" + _E, "ezak", "eztk"),
    _rule("shippo_token", _B + r"shippo_(?:live|test)_[a-f0-9]{40}" + _E, "shippo_"),
    _rule(
        "flutterwave_key",
        _B + r"(?:FLW(?:PUB|SEC)K(?:_TEST)?-[A-Za-z0-9]{32}-X|FLWSECK_TEST[a-f0-9]{12})" + _E,
        "flw",
    ),
    _rule(
        "plaid_token",
        _B + r"(?:access|public|link)-(?:sandbox|development|production)-" + _UUID + _E,
        "-sandbox-",
        "-development-",
        "-production-",
    ),
    _rule("hubspot_token", _B + r"pat-(?:na|eu|ap)\d-" + _UUID + _E, "pat-na", "pat-eu", "pat-ap"),
    _rule(
        "live_test_key",
        # Lob, Mollie, GoCardless, Paystack and others: live_/test_ + a random tail.
        _B + r"(?:live|test)_(?:pub_)?[A-Za-z0-9]{30,40}" + _E,
        "live_",
        "test_",
        random=True,
    ),
    _rule("mapbox_token", _B + r"[ps]k\.eyJ[A-Za-z0-9_\-]{20,}\.[A-Za-z0-9_\-]{20,}", "k.eyj"),
)
