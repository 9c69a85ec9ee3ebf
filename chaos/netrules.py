# Network faults as iptables rules inside the containers' own network namespaces (the kernel has no
# netem): a partition drops packets by address, packet loss drops a random share of them. Every
# rule lives in two chains of our own (PGHA-CHAOS-IN from INPUT, PGHA-CHAOS-OUT from OUTPUT), and a
# container's chains are always rewritten as a whole from the faults still active, in one atomic
# iptables-restore, so healing a fault removes exactly its rules and a rebooted container (a new
# network namespace) gets back the rules it must have. Safety rule protected: a partition is in
# force on both sides of every cut link, so a message cannot slip through a side not yet updated.
"""Pure helpers: the iptables rules for the host pairs a partition cuts (which pairs it cuts is the
planner's business, pgha.faults.partition_pairs, shared with the simulator)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pgha.faults import Pair

CHAIN_IN = "PGHA-CHAOS-IN"
CHAIN_OUT = "PGHA-CHAOS-OUT"
RULES_ENV = "PGHA_CHAOS_RULES"


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One rule of our chains, as iptables arguments after `-A <chain>`."""

    chain: str
    args: tuple[str, ...]

    def line(self) -> str:
        """The rule as a line of iptables-restore input (which knows no shell quoting)."""
        words = ["-A", self.chain, *self.args]
        if any(not word or any(c.isspace() or c in "'\"" for c in word) for word in words):
            raise ValueError(f"an iptables argument must be one plain word: {words}")
        return " ".join(words)


def drop_rules(
    pairs: Iterable[Pair], ip_of: Mapping[str, str], managed: Iterable[str]
) -> dict[str, list[Rule]]:
    """For each host we manage, the rules that drop its side of the cut pairs.

    A pair (src, dst) becomes `OUTPUT -d dst DROP` in src and `INPUT -s src DROP` in dst; a side
    we cannot put rules into (the Docker host) is covered by the other side alone.
    """
    mine = set(managed)
    rules: dict[str, list[Rule]] = {}
    for src, dst in pairs:
        if src == dst:
            continue
        if src in mine:
            out = Rule(chain=CHAIN_OUT, args=("-d", f"{ip_of[dst]}/32", "-j", "DROP"))
            _add(rules, src, out)
        if dst in mine:
            into = Rule(chain=CHAIN_IN, args=("-s", f"{ip_of[src]}/32", "-j", "DROP"))
            _add(rules, dst, into)
    return rules


def _add(rules: dict[str, list[Rule]], host: str, rule: Rule) -> None:
    bucket = rules.setdefault(host, [])
    if rule not in bucket:
        bucket.append(rule)


def loss_rules(hosts: Iterable[str], rate: float) -> dict[str, list[Rule]]:
    """Drop `rate` of the packets to and from each host (loopback excepted)."""
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"a loss rate is in (0, 1], got {rate}")
    random = ("-m", "statistic", "--mode", "random", "--probability", f"{rate:.6f}", "-j", "DROP")
    return {
        host: [
            Rule(chain=CHAIN_IN, args=("!", "-i", "lo", *random)),
            Rule(chain=CHAIN_OUT, args=("!", "-o", "lo", *random)),
        ]
        for host in hosts
    }


def restore_input(rules: Iterable[Rule]) -> str:
    """iptables-restore input (with --noflush) that makes our chains hold exactly `rules`."""
    lines = ["*filter", f":{CHAIN_IN} - [0:0]", f":{CHAIN_OUT} - [0:0]"]
    lines += [rule.line() for rule in rules]
    return "\n".join([*lines, "COMMIT", ""])


# Run in the container with the rules in $PGHA_CHAOS_RULES: create our chains and their jumps once
# (a fresh network namespace after a reboot has neither), then replace the chains' contents.
SYNC_SCRIPT = f"""
set -e
iptables -w -N {CHAIN_IN} 2>/dev/null || true
iptables -w -N {CHAIN_OUT} 2>/dev/null || true
iptables -w -C INPUT -j {CHAIN_IN} 2>/dev/null || iptables -w -I INPUT 1 -j {CHAIN_IN}
iptables -w -C OUTPUT -j {CHAIN_OUT} 2>/dev/null || iptables -w -I OUTPUT 1 -j {CHAIN_OUT}
printf '%s' "${RULES_ENV}" | iptables-restore -w --noflush
"""

LIST_ARGV = (
    "sh",
    "-c",
    f"iptables -w -S {CHAIN_IN} 2>/dev/null; iptables -w -S {CHAIN_OUT} 2>/dev/null",
)


def listed_rules(output: str) -> list[str]:
    """The `-A` lines of `iptables -S` output (chain declarations left out)."""
    return [line for line in output.splitlines() if line.startswith("-A ")]
