"""Simulated internet: autonomous systems by type and country, IP pools, clients.

An `Internet` holds a catalogue of ASNs (residential ISPs and mobile carriers per country,
cloud/datacenter hosts, VPN/proxy providers, universities, companies) and a flat table of IP
entries; accounts draw requests from pools (contiguous ranges of entries). A shared pool is
a NAT: a university's egress, a mobile carrier's CGNAT, a corporate proxy.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ASN_TYPES = ["residential", "mobile", "datacenter", "proxy", "education", "business"]

# country, weight among API users, UTC offsets its users live in
COUNTRIES: list[tuple[str, float, tuple[float, ...]]] = [
    ("US", 30, (-8, -7, -6, -5, -5, -5)),
    ("IN", 8, (5.5,)),
    ("GB", 6, (0,)),
    ("DE", 5, (1,)),
    ("BR", 4, (-3,)),
    ("FR", 3, (1,)),
    ("CA", 3, (-5, -8, -7)),
    ("JP", 3, (9,)),
    ("KR", 2, (9,)),
    ("ES", 2, (1,)),
    ("IT", 2, (1,)),
    ("NL", 2, (1,)),
    ("PL", 2, (1,)),
    ("ID", 2, (7,)),
    ("PH", 2, (8,)),
    ("VN", 1.5, (7,)),
    ("MX", 2, (-6,)),
    ("TR", 1.5, (3,)),
    ("SG", 1, (8,)),
    ("AU", 2, (10, 8)),
    ("NG", 1, (1,)),
    ("KE", 1, (3,)),
    ("ZA", 1, (2,)),
    ("EG", 1, (2,)),
    ("PK", 1, (5,)),
    ("SE", 1, (1,)),
    ("AR", 1, (-3,)),
    ("TH", 1, (7,)),
    ("MY", 1, (8,)),
    ("NZ", 0.5, (12,)),
]
COUNTRY_CODES = [c[0] for c in COUNTRIES]
COUNTRY_P = np.array([c[1] for c in COUNTRIES]) / sum(c[1] for c in COUNTRIES)

# (label, user agent, TLS-fingerprint variants): TLS fingerprints follow the client library
CLIENTS: list[tuple[str, str, int]] = [
    (
        "chrome_win",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        2,
    ),
    (
        "chrome_mac",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        2,
    ),
    (
        "safari_mac",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
        1,
    ),
    ("firefox", "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", 1),
    (
        "edge_win",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
        1,
    ),
    ("ios_app", "AtlasChat/3.2.1 (iPhone; iOS 18.1; Scale/3.00)", 1),
    ("android_app", "okhttp/4.12.0", 1),
    (
        "chrome_android",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
        1,
    ),
    ("openai_python", "OpenAI/Python 1.54.3", 3),
    ("openai_node", "OpenAI/JS 4.67.1", 2),
    ("requests", "python-requests/2.32.3", 3),
    ("httpx", "python-httpx/0.27.2", 2),
    ("curl", "curl/8.5.0", 1),
    ("go", "Go-http-client/2.0", 1),
    ("langchain", "langchain-openai/0.2.9 OpenAI/Python 1.54.3", 2),
    ("java", "Java-http-client/21.0.4", 1),
    ("axios", "axios/1.7.7", 1),
]
CLIENT_INDEX = {c[0]: i for i, c in enumerate(CLIENTS)}
HUMAN_CLIENTS = [
    "chrome_win",
    "chrome_mac",
    "safari_mac",
    "firefox",
    "edge_win",
    "ios_app",
    "android_app",
    "chrome_android",
]
HUMAN_CLIENT_P = np.array([30, 18, 10, 6, 6, 14, 10, 6], float)
SDK_CLIENTS = [
    "openai_python",
    "openai_node",
    "requests",
    "httpx",
    "curl",
    "go",
    "langchain",
    "java",
    "axios",
]
SDK_CLIENT_P = np.array([35, 18, 12, 8, 3, 6, 10, 4, 4], float)


def _ja3(label: str) -> str:
    return hashlib.md5(label.encode()).hexdigest()


@dataclass
class ClientTable:
    """User agents and their TLS fingerprints; custom clients can be added per campaign."""

    user_agents: list[str] = field(default_factory=list)
    tls: list[str] = field(default_factory=list)
    tls_of_client: list[list[int]] = field(default_factory=list)

    @classmethod
    def standard(cls) -> ClientTable:
        t = cls()
        for label, ua, n_tls in CLIENTS:
            t.user_agents.append(ua)
            ids = []
            for v in range(n_tls):
                t.tls.append(_ja3(f"{label}/{v}"))
                ids.append(len(t.tls) - 1)
            t.tls_of_client.append(ids)
        return t

    def add_tls(self, label: str) -> int:
        """A new (rare, custom) TLS fingerprint."""
        self.tls.append(_ja3(label))
        return len(self.tls) - 1

    def pick(self, rng: np.random.Generator, clients: np.ndarray) -> np.ndarray:
        """A TLS fingerprint consistent with each client (library/OpenSSL build variant)."""
        out = np.empty(len(clients), dtype=np.int64)
        for c in np.unique(clients):
            sel = clients == c
            opts = self.tls_of_client[int(c)]
            out[sel] = np.asarray(opts)[rng.integers(0, len(opts), int(sel.sum()))]
        return out


_BAD_FIRST = {0, 10, 100, 127, 169, 172, 192, 198, 203}


class Internet:
    """ASN catalogue plus a flat table of IP entries that pools index into."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.asn_number: list[int] = []
        self.asn_type: list[int] = []
        self.asn_country: list[int] = []
        self.asn_prefixes: list[np.ndarray] = []
        self._used16: set[int] = set()
        self._ip_v4: list[np.ndarray] = []
        self._ip_v6: list[tuple[int, list[str]]] = []
        self._ent_asn: list[np.ndarray] = []
        self.n_entries = 0
        self.residential: dict[int, list[int]] = {}
        self.mobile: dict[int, list[int]] = {}
        for ci, _ in enumerate(COUNTRY_CODES):
            self.residential[ci] = [self.new_asn("residential", ci, prefixes=128) for _ in range(2)]
            self.mobile[ci] = [self.new_asn("mobile", ci)]
        dc_c = [COUNTRY_CODES.index(c) for c in ("US", "US", "US", "DE", "NL", "SG", "FR", "GB")]
        self.datacenter = [self.new_asn("datacenter", c, prefixes=6) for c in dc_c]
        px_c = [COUNTRY_CODES.index(c) for c in ("NL", "US", "GB", "SE")]
        self.proxy = [self.new_asn("proxy", c, prefixes=2) for c in px_c]

    def new_asn(self, kind: str, country: int, prefixes: int = 3) -> int:
        """Register an autonomous system with a few /16 prefixes; returns its index."""
        num = int(self.rng.integers(1000, 400000))
        while num in self.asn_number:
            num = int(self.rng.integers(1000, 400000))
        pre = []
        while len(pre) < prefixes:
            p = int(self.rng.integers(1 << 8, 224 << 8))
            if (p >> 8) in _BAD_FIRST or p in self._used16:
                continue
            self._used16.add(p)
            pre.append(p)
        self.asn_number.append(num)
        self.asn_type.append(ASN_TYPES.index(kind))
        self.asn_country.append(country)
        self.asn_prefixes.append(np.array(pre, dtype=np.int64))
        return len(self.asn_number) - 1

    def _random_ips(self, asn: np.ndarray) -> np.ndarray:
        asn = np.asarray(asn, dtype=np.int64)
        n = len(asn)
        pre = np.empty(n, dtype=np.int64)
        for a in np.unique(asn):
            sel = asn == a
            p = self.asn_prefixes[int(a)]
            pre[sel] = p[self.rng.integers(0, len(p), int(sel.sum()))]
        return (pre << 16) | self.rng.integers(1, 65535, n)

    def add(self, asn: np.ndarray, ips: np.ndarray | None = None) -> int:
        """Append IPv4 entries (random hosts of each ASN unless ips given); returns the offset."""
        asn = np.asarray(asn, dtype=np.int64)
        ips = self._random_ips(asn) if ips is None else np.asarray(ips, dtype=np.int64)
        off = self.n_entries
        self._ip_v4.append(ips)
        self._ent_asn.append(asn)
        self.n_entries += len(asn)
        return off

    def add_v6(self, asn: np.ndarray) -> int:
        """Append random IPv6 entries (per-device addresses) for the given ASNs."""
        asn = np.asarray(asn, dtype=np.int64)
        off = self.n_entries
        words = self.rng.integers(0, 65536, size=(len(asn), 5))
        strs = [
            f"2a0{a % 10}:{(a * 7919) % 65536:x}:{w[0]:x}:{w[1]:x}::{w[2]:x}:{w[3]:x}"
            for a, w in zip(asn.tolist(), words.tolist(), strict=True)
        ]
        self._ip_v4.append(np.full(len(asn), -1, dtype=np.int64))
        self._ip_v6.append((off, strs))
        self._ent_asn.append(asn)
        self.n_entries += len(asn)
        return off

    def block24(self, asn: int) -> int:
        """Base address of a random /24 inside the ASN."""
        p = self.asn_prefixes[asn]
        return (int(p[self.rng.integers(0, len(p))]) << 16) | (int(self.rng.integers(0, 256)) << 8)

    def add_block(self, asn: int, base: int, n: int) -> int:
        """n distinct hosts of one /24 (a NAT egress range or a rented server block)."""
        hosts = self.rng.choice(np.arange(1, 255), size=min(n, 254), replace=False)
        return self.add(np.full(len(hosts), asn), base + hosts)

    def finish(self) -> tuple[pa.Array, np.ndarray, np.ndarray, np.ndarray]:
        """(ip strings, asn numbers, asn type codes, country codes) per entry."""
        v4 = np.concatenate(self._ip_v4) if self._ip_v4 else np.zeros(0, np.int64)
        asn = np.concatenate(self._ent_asn) if self._ent_asn else np.zeros(0, np.int64)
        octs = [
            pc.cast(pa.array((np.maximum(v4, 0) >> s) & 255), pa.string()) for s in (24, 16, 8, 0)
        ]
        ip = pc.binary_join_element_wise(*octs, ".").to_numpy(zero_copy_only=False).astype(object)
        for off, strs in self._ip_v6:
            ip[off : off + len(strs)] = strs
        num = np.asarray(self.asn_number, dtype=np.int64)[asn]
        typ = np.asarray(self.asn_type, dtype=np.int64)[asn]
        cty = np.asarray(self.asn_country, dtype=np.int64)[asn]
        return pa.array(ip, type=pa.string()), num, typ, cty
