"""The scan's one pipeline definition: named SQL statements over the ``events`` table.

Written in a DuckDB SQL subset that sqlglot transpiles to Spark SQL
(`distilltrace.traffic.engine.to_dialect`). Each statement reduces events to a small
table: per request features (computed once, vectorised), per account, per
(account, shared value), per (account, task family), per (account, hour of day),
per (account, day) and per (account, model). Ordering is total (ties broken by ids)
wherever a result depends on order, so every engine gives the same tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from distilltrace.traffic import textrules as tr

#: Linkage kinds: name -> (required column, SQL expression of the shared value).
LINK_KINDS: dict[str, tuple[str, str]] = {
    "payment": ("payment_fingerprint", "payment_fingerprint"),
    "ip": ("client_ip", "client_ip"),
    "prefix": (
        "client_ip",
        "CASE WHEN contains(client_ip, ':') THEN "
        "concat_ws(':', split_part(client_ip, ':', 1), split_part(client_ip, ':', 2), "
        "split_part(client_ip, ':', 3)) || '::/48' "
        "ELSE concat_ws('.', split_part(client_ip, '.', 1), split_part(client_ip, '.', 2), "
        "split_part(client_ip, '.', 3)) || '.0/24' END",
    ),
    "asn": ("asn", "CAST(asn AS VARCHAR)"),
    "tls": ("tls_fingerprint", "tls_fingerprint"),
    "user_agent": ("user_agent", "user_agent"),
    "org": ("org_id", "org_id"),
    "api_key": ("api_key_id", "api_key_id"),
}

#: Template frames an account contributes to linkage (its most used frames).
FRAMES_PER_ACCOUNT = 3

#: asn_type values of networks that rent addresses (proxy pools live there).
RENTED_NETWORKS = "('datacenter', 'proxy', 'hosting', 'vpn')"

#: User-agent families: a browser's UA names its engine; a script or SDK names itself.
UA_BROWSER = r"mozilla/|chrome/|safari/|firefox/|edg/|opera|applewebkit|gecko/"
UA_SCRIPT = (
    r"python|curl/|wget|httpx|aiohttp|requests/|okhttp|go-http|java/|node|axios|undici"
    r"|libwww|openai|anthropic|langchain|sdk|bot\b|scrapy|postman|insomnia|http-client"
)


def ua_family_sql(col: str = "user_agent") -> str:
    """SQL: 'browser', 'script' or 'other' for a user agent (script cues win: SDKs often
    prepend a browser-like token)."""
    lc = f"lower({col})"
    return (
        f"CASE WHEN regexp_matches({lc}, '{UA_SCRIPT}') THEN 'script' "
        f"WHEN regexp_matches({lc}, '{UA_BROWSER}') THEN 'browser' ELSE 'other' END"
    )


@dataclass(frozen=True)
class Statement:
    """One named step: ``CREATE TABLE name AS sql``."""

    name: str
    sql: str
    purpose: str
    #: its aggregates group by nearly unique keys (`Engine.execute`'s ``many_groups``)
    many_groups: bool = False

    def define(self, eng) -> None:
        """Create this step's table in engine ``eng``."""
        eng.execute(self.name, self.sql, many_groups=self.many_groups)


def statements(present: set[str]) -> list[Statement]:
    """The pipeline for the columns present (statements needing absent columns are left out):
    per-request features, then per-account reductions, then per-(account, value) links."""
    has = present.__contains__
    return [
        _req_statement(has),
        *_combo_statements(has),
        *_account_statements(has),
        *_link_statements(has),
    ]


def _meta_columns(has) -> list[str]:
    """The text metadata columns an account's row reports (its least value of each)."""
    return [
        c for c in ("signup_path", "org_id", "payment_fingerprint", "country", "asn_type") if has(c)
    ]


def _infra_columns(has) -> list[str]:
    """The columns whose shared values link accounts (and the network type of an ASN)."""
    cols = sorted({col for col, _ in LINK_KINDS.values() if has(col)})
    if has("asn_type") and has("asn"):
        cols.append("asn_type")
    return cols


def _combo_keys(has) -> list[str]:
    """The value columns of ``acct_combo`` (none: no such table)."""
    return sorted(set(_meta_columns(has)) | set(_infra_columns(has)))


def _combo_statements(has) -> list[Statement]:
    """One pass over the events: the distinct combinations of metadata and infrastructure
    values per account (accounts use few), from which the metadata and linkage tables are
    small group-bys (two 3M-row passes were one each in Spark)."""
    keys = _combo_keys(has)
    if not keys:
        return []
    created = ", min(created_t) AS created_t" if has("account_created_at") else ""
    cols = ", ".join(keys)
    return [
        Statement(
            "acct_combo",
            f"SELECT account_id, _aid AS aid, {cols}, count(*) AS n{created} FROM events "
            f"GROUP BY account_id, _aid, {cols}",
            "per (account, metadata and infrastructure combination) counts",
        )
    ]


def _req_statement(has) -> Statement:
    """Per-request text features, computed once, vectorised."""
    rules = tr.rule_sql("lp")
    nb = tr.elicitation_model()
    # the rules that later statements count; the others only feed the log-odds
    kept = [r for r in rules if r in tr.STRONG_RULES or r == "step_by_step"]
    tok_in = "input_tokens" if has("input_tokens") else "NULL::BIGINT"
    tok_out = "output_tokens" if has("output_tokens") else "NULL::BIGINT"
    model = "model" if has("model") else "NULL::VARCHAR"

    # The log-odds are summed exactly (decimal literals), then stored as a DOUBLE: a
    # DECIMAL(30,6) column is a Java BigDecimal per row in Spark, in the Arrow transfer,
    # the cache and every aggregate over it (req took 5 s longer at 3M).
    # Extraction cues are rare in ordinary traffic: one combined regex gates the
    # per-rule regexes, which then run only on the (few) rows that match it. A request
    # that matches no cue cannot reach positive log-odds (see textrules.GATE_FEATURES).
    gate = tr.gate_sql("lp")
    rule_cols = ", ".join(
        f"CASE WHEN _gate THEN {expr} ELSE 0 END AS {name}" for name, expr in rules.items()
    )
    return Statement(
        "req",
        f"""
SELECT request_id, account_id, aid, t,
       CAST(floor(t / 86400) AS BIGINT) AS day,
       CAST(floor(t / 3600) AS BIGINT) % 24 AS hod,
       left(md5(left(sk, 60) || '|' || right(sk, 40)), 16) AS frame_hash,
       length(sk) - length(replace(sk, ' ', '')) + 1 AS sk_words,
       prompt_hash, {tr.topic_sql("_tm")} AS topic, {", ".join(kept)},
       CAST({nb.sql()} AS DOUBLE) AS elicit_lo,
       in_tok, out_tok, model
FROM (
  SELECT request_id, account_id, _aid AS aid, t, hash(prompt) AS prompt_hash, {tr.skeleton_sql("prompt")} AS sk,
         {tr.topic_match_sql("lp")} AS _tm, {rule_cols},
         {tok_in} AS in_tok, {tok_out} AS out_tok, {model} AS model
  FROM (SELECT *, lower(left(prompt, {tr.TEXT_CHARS})) AS lp,
               regexp_matches(lower(left(prompt, {tr.TEXT_CHARS})), {gate}) AS _gate
        FROM events))
""",
        "per-request text features: skeleton and frame hashes, extraction cues and their "
        "naive Bayes log-odds, task family",
    )


#: The columns of ``acct`` after its account key.
ACCT_COLUMNS = (
    "a.n_req, a.first_t, a.last_t, a.n_days, a.n_hours, a.n_distinct_prompts, a.n_elicit, "
    "a.n_rule, a.n_step, a.elicit_lo_mean, a.in_tok, a.out_tok, a.sk_words_mean"
)


def _named(sql: str, cols: str, keep: str = "") -> str:
    """A per-account-key aggregate ``sql`` (its key column ``aid``) with each account's id
    put back: ``account_id, {keep}{cols}`` (the key is unique per account, checked by the
    scan). Aggregates group by the 64-bit key, not the id text."""
    return (
        f"SELECT m.account_id, {', '.join('x.' + c.strip() for c in (keep + cols).split(','))} "
        f"FROM ({sql}) x JOIN acct_meta m ON x.aid = m.aid"
    )


def _account_statements(has) -> list[Statement]:
    """Per-account volume, timing, metadata, task-family, hour, day and model tables."""
    out: list[Statement] = []
    strong = " + ".join(tr.STRONG_RULES)
    created = has("account_created_at")
    text = _meta_columns(has)
    out.append(
        Statement(
            "acct_meta",
            _meta_sql(created, text, bool(_combo_keys(has))),
            "per-account metadata (sign-up time and path, org, country)",
        )
    )
    out.append(
        Statement(
            "acct_iat",
            """
SELECT aid, count(gap) AS n_gaps, avg(gap) AS gap_mean, stddev_pop(gap) AS gap_std,
       avg(CASE WHEN gap < 1 THEN 1.0 ELSE 0.0 END) AS gap_lt1s
FROM (SELECT aid, t - lag(t) OVER (PARTITION BY aid ORDER BY t) AS gap FROM req)
GROUP BY aid
""",
            # requests at the same t leave a gap of 0 in either order: no tie-break is
            # needed, and Spark's sort then neither compares nor shuffles request ids
            "inter-arrival gaps per account (load-balancer cadence)",
        )
    )
    # the per-(account, hour) and per-(account, day) tables first: the account table
    # counts its distinct hours and days from them (one plain aggregate per table, where
    # several distinct counts in one aggregate make Spark expand every row once per count)
    out.append(
        Statement(
            "acct_hod",
            _named("SELECT aid, hod, count(*) AS n FROM req GROUP BY aid, hod", "hod, n", "aid, "),
            "per (account, hour of day) counts",
        )
    )
    out.append(
        Statement(
            "acct_day",
            "SELECT aid, day, count(*) AS n FROM req GROUP BY aid, day",
            "per (account, day) counts",
        )
    )
    out.append(
        Statement(
            "acct",
            f"""
SELECT r.aid, r.n_req, r.first_t, r.last_t,
       coalesce(d.n_days, 0) AS n_days, coalesce(h.n_hours, 0) AS n_hours,
       coalesce(p.n_distinct_prompts, 0) AS n_distinct_prompts,
       r.n_elicit, r.n_rule, r.n_step, r.elicit_lo_mean, r.in_tok, r.out_tok, r.sk_words_mean
FROM (SELECT aid, count(*) AS n_req, min(t) AS first_t, max(t) AS last_t,
             sum(CASE WHEN elicit_lo > 0 THEN 1 ELSE 0 END) AS n_elicit,
             sum(CASE WHEN ({strong}) > 0 THEN 1 ELSE 0 END) AS n_rule,
             sum(step_by_step) AS n_step,
             avg(elicit_lo) AS elicit_lo_mean,
             sum(coalesce(in_tok, 0)) AS in_tok, sum(coalesce(out_tok, 0)) AS out_tok,
             avg(sk_words) AS sk_words_mean
      FROM req GROUP BY aid) r
LEFT JOIN (SELECT aid, count(day) AS n_days FROM acct_day GROUP BY aid) d ON r.aid = d.aid
LEFT JOIN (SELECT aid, count(hod) AS n_hours FROM acct_hod GROUP BY aid) h ON r.aid = h.aid
LEFT JOIN (SELECT aid, count(prompt_hash) AS n_distinct_prompts
           FROM (SELECT aid, prompt_hash FROM req GROUP BY aid, prompt_hash)
           GROUP BY aid) p ON r.aid = p.aid
""",
            "per-account volume, diversity and elicitation counts",
        )
    )
    meta_cols = "".join(f", m.{c}" for c in (["created_t"] if created else []) + text)
    out.append(
        Statement(
            "acct_all",
            f"SELECT m.account_id, {ACCT_COLUMNS}, i.n_gaps, i.gap_mean, i.gap_std, "
            f"i.gap_lt1s, m.n_events{meta_cols} FROM acct a JOIN acct_meta m ON a.aid = m.aid "
            "LEFT JOIN acct_iat i ON a.aid = i.aid",
            "the per-account table that leaves the engine",
        )
    )
    out.append(
        Statement(
            "acct_topic",
            _named("SELECT aid, topic, count(*) AS n FROM req GROUP BY aid, topic", "topic, n"),
            "per (account, task family) counts",
        )
    )
    if has("model"):
        out.append(
            Statement(
                "acct_model",
                _named(
                    "SELECT aid, model, count(*) AS n, min(t) AS first_t FROM req "
                    "WHERE model IS NOT NULL GROUP BY aid, model",
                    "model, n, first_t",
                ),
                "per (account, model) volume and first use",
            )
        )
    return out


def _meta_sql(created: bool, text: list[str], combo: bool) -> str:
    """Per-account event count, earliest sign-up time (``created``) and least value of
    each ``text`` metadata column. From ``acct_combo`` when there is one (``combo``: an
    account has few combinations): the same result as one aggregate over the events,
    without a minimum over text in a 3M-row aggregate (which Spark can only sort, not
    hash)."""
    mins = "".join(f", min({c}) AS {c}" for c in (["created_t"] if created else []) + text)
    if not combo:
        return (
            f"SELECT account_id, _aid AS aid, count(*) AS n_events{mins} FROM events "
            "GROUP BY account_id, _aid"
        )
    return (
        f"SELECT account_id, aid, CAST(sum(n) AS BIGINT) AS n_events{mins} "
        "FROM acct_combo GROUP BY account_id, aid"
    )


def _link_statements(has) -> list[Statement]:
    """Per (account, shared value) counts for the linkage graph."""
    out: list[Statement] = []
    link_cols = _infra_columns(has)
    parts = []
    if link_cols:
        # the distinct infrastructure combinations per account (from acct_combo), then
        # one small group-by per kind
        cols = ", ".join(link_cols)
        out.append(
            Statement(
                "acct_infra",
                f"SELECT account_id, {cols}, CAST(sum(n) AS BIGINT) AS n FROM acct_combo "
                f"GROUP BY account_id, {cols}",
                "per (account, infrastructure combination) counts",
            )
        )
    out.extend(_client_statements(has))
    for kind, (col, expr) in LINK_KINDS.items():
        if not has(col):
            continue
        where = f"{col} IS NOT NULL"
        if kind == "asn" and has("asn_type"):
            where += f" AND asn_type IN {RENTED_NETWORKS}"
        parts.append(
            f"SELECT '{kind}' AS kind, CAST({expr} AS VARCHAR) AS value, account_id, sum(n) AS n "
            f"FROM acct_infra WHERE {where} GROUP BY 2, 3"
        )
    parts.append(
        f"""
SELECT 'template' AS kind, CAST(x.frame_hash AS VARCHAR) AS value, m.account_id, x.n FROM (
  SELECT aid, frame_hash, n,
         row_number() OVER (PARTITION BY aid ORDER BY n DESC, frame_hash) AS k
  FROM (SELECT aid, frame_hash, count(*) AS n FROM req
        WHERE sk_words >= 6 GROUP BY aid, frame_hash)
  WHERE n >= 2) x JOIN acct_meta m ON x.aid = m.aid WHERE x.k <= {FRAMES_PER_ACCOUNT}
"""
    )
    out.append(
        Statement(
            "acct_value",
            " UNION ALL ".join(parts),
            "per (account, shared value) counts for the linkage graph",
            # the template frames: about one request per (account, frame) at 3M
            many_groups=True,
        )
    )
    return out


def _client_statements(has) -> list[Statement]:
    """Per (account, TLS build, UA family) and per (account, rented-network IP) counts, for
    client-contradiction and IP-pool evidence (`signals.client_mismatch`, `signals.ip_pools`)."""
    out = []
    if has("tls_fingerprint") and has("user_agent"):
        out.append(
            Statement(
                "acct_client",
                f"SELECT account_id, tls_fingerprint AS tls, {ua_family_sql()} AS fam, sum(n) AS n "
                "FROM acct_infra WHERE tls_fingerprint IS NOT NULL AND user_agent IS NOT NULL "
                "GROUP BY 1, 2, 3",
                "per (account, TLS build, user-agent family) counts",
            )
        )
    if has("client_ip") and has("asn_type"):
        out.append(
            Statement(
                "acct_ip",
                "SELECT account_id, client_ip AS ip, sum(n) AS n FROM acct_infra "
                f"WHERE client_ip IS NOT NULL AND asn_type IN {RENTED_NETWORKS} GROUP BY 1, 2",
                "per (account, rented-network IP) counts, for IP pools",
            )
        )
    return out


def stage2_statements() -> list[Statement]:
    """Statements run after clustering, with the small ``cluster_map`` table uploaded: the
    clusters' requests are picked out in one pass over the requests, and the timelines and
    examples are computed from that subset."""
    return [
        Statement(
            "cluster_req",
            "SELECT m.cluster_id, r.request_id, r.account_id, r.t, r.day, r.elicit_lo "
            "FROM req r JOIN cluster_map m ON r.account_id = m.account_id",
            "the requests of the clusters shown (one pass over the requests, where each "
            "table below took its own in Spark)",
        ),
        Statement(
            "cluster_day",
            "SELECT cluster_id, day, count(*) AS n, count(DISTINCT account_id) AS n_accounts "
            "FROM cluster_req GROUP BY cluster_id, day",
            "per (cluster, day) volume for timelines",
        ),
        Statement(
            "cluster_sync",
            "SELECT cluster_id, CAST(floor(t / 600) AS BIGINT) AS bin, "
            "count(DISTINCT account_id) AS k "
            "FROM cluster_req GROUP BY cluster_id, CAST(floor(t / 600) AS BIGINT)",
            "per (cluster, 10-minute bin) active member counts (synchronisation)",
        ),
        Statement(
            "cluster_top",
            """
SELECT cluster_id, request_id, account_id, t, elicit_lo FROM (
  SELECT cluster_id, request_id, account_id, t, elicit_lo,
         row_number() OVER (PARTITION BY cluster_id ORDER BY elicit_lo DESC, request_id) AS k
  FROM cluster_req)
WHERE k <= 5
""",
            "the most extraction-like requests per cluster (a small table of its own, so "
            "that joining it to the events moves only its rows)",
        ),
        Statement(
            "cluster_examples",
            "SELECT top.cluster_id, top.request_id, top.account_id, top.t, e.prompt, top.elicit_lo "
            "FROM cluster_top top JOIN events e ON e.request_id = top.request_id",
            "example prompts per cluster (most extraction-like first)",
        ),
    ]
