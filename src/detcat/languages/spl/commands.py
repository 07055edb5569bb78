"""The SPL commands detcat reads: one ``cmd_<name>`` method each.

Commands that filter add predicates; commands that define fields (eval, rex,
spath, lookup, rename, aggregations) update the scope so that later filters
resolve to the right vendor field and stage; commands in ``IGNORED`` neither
filter nor define fields; anything else becomes ``Opaque(text, "unsupported command", "<name>")``.
"""

from __future__ import annotations

import re
from dataclasses import replace

from detcat.languages.spl.computed import program, rex_program
from detcat.languages.spl.eval import analyze_assignment, eval_assignments
from detcat.languages.spl.expr import RAW_TEXT, FieldRef, eval_string, predicate, unquote
from detcat.languages.spl.fields import Agg, Rename
from detcat.languages.spl.pipeline import Lookup, Pipeline
from detcat.languages.spl.scan import Command, arg_tokens
from detcat.model import Not, Op, Opaque, Reason

_TRANSACTION_OUT = ("duration", "eventcount", "closed_txn", "field_match_sum", "linecount")
_IPLOCATION_OUT = ("City", "Country", "Region", "lat", "lon")


def _options(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """Split ``key=value`` options from the other arguments."""
    opts: dict[str, str] = {}
    rest: list[str] = []
    for w in args:
        if OPTION.fullmatch(w):
            key, _, value = w.partition("=")
            opts[key.lower()] = unquote(value)[0]
        else:
            rest.append(w)
    return opts, rest


def _pairs(args: list[str]) -> list[tuple[str, str]]:
    """``a [AS b] c [AS d] …`` -> [(a, b), (c, c) …]."""
    out, i = [], 0
    while i < len(args):
        name = unquote(args[i])[0]
        if i + 2 < len(args) and args[i + 1].lower() == "as":
            out.append((name, unquote(args[i + 2])[0]))
            i += 3
        else:
            out.append((name, name))
            i += 1
    return out


# Statistics whose output is still the values of the input field.
_CARRY = frozenset({"values", "list", "latest", "earliest", "first", "last", "mode"})
_TIME = "_time"
OPTION = re.compile(r"[\w.]+=(?:\([^()]*\)|[^()]*)")  # key=value, key=(search terms)
_AGG_CALL = re.compile(r"(\w+)\((.*)\)", re.S)
_FIELD = re.compile(r"[\w.{}@:]+|\"[^\"]*\"|'[^']*'")
_GROUP = re.compile(r"\(\?P?<(\w+)>")


def words(cmd: Command) -> list[str]:
    return [t for _, t in arg_tokens(cmd.args) if t != ","]


def parse_aggregations(
    tokens: list[str],
) -> tuple[list[str], list[tuple[str, str | None]], list[str]]:
    """``stats``-style arguments -> (aggregation texts, outputs, by-fields)."""
    aggs: list[str] = []
    outputs: list[tuple[str, str | None]] = []
    by: list[str] = []
    i, in_by = 0, False
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if tok.lower() in ("by", "over"):
            in_by = True
        elif OPTION.fullmatch(tok) or tok.startswith("`"):
            continue
        elif in_by:
            by.append(unquote(tok)[0])
        else:
            alias = None
            if i + 1 < len(tokens) and tokens[i].lower() == "as":
                alias = unquote(tokens[i + 1])[0]
                i += 2
            outputs.append((alias or tok, _carried(tok)))
            aggs.append(f"{tok} AS {alias}" if alias else tok)
    return aggs, outputs, by


def _carried(agg: str) -> str | None:
    """The field whose values an aggregate output still holds (``values(x)``,
    ``latest(x)``), or None for a computed one. The first or last *time* of a group
    (``earliest(_time) AS firstTime``) is a fact about the group, not an event's
    timestamp: it stays computed (``firstTime >= relative_time(now(), "-24h@h")``
    asks whether the group is new)."""
    m = _AGG_CALL.fullmatch(agg)
    if m and m.group(1).lower() in _CARRY and _FIELD.fullmatch(m.group(2).strip()):
        field = unquote(m.group(2).strip())[0]
        return None if field == _TIME else field
    return None


def _whole_group(regex: str) -> tuple[str, str] | None:
    """``(?<name>inner)`` spanning the whole regex -> (name, inner)."""
    m = _GROUP.match(regex)
    if m is None or not regex.endswith(")"):
        return None
    depth, i, n = 0, 0, len(regex)
    while i < n:
        c = regex[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":  # a character class: its parentheses are literal
            close = regex.find("]", i + 2)
            i = n if close < 0 else close + 1
            continue
        depth += {"(": 1, ")": -1}.get(c, 0)
        if depth == 0:
            return (m.group(1), regex[m.end() : -1]) if i == n - 1 else None
        i += 1
    return None


class SplPipeline(Pipeline):
    # -- filters ---------------------------------------------------------------------

    def cmd_search(self, cmd: Command) -> None:
        self.search(cmd.args, cmd.offset)

    def cmd_where(self, cmd: Command) -> None:
        self.where(cmd.args, cmd.offset)

    # -- fields ----------------------------------------------------------------------

    def cmd_eval(self, cmd: Command) -> None:
        for target, expr in eval_assignments(cmd.args, self.src, cmd.offset):
            a = analyze_assignment(target, expr, self, cmd.args, self.src, cmd.offset)
            if a.source is not None:
                self.scope.bind(target, replace(a.source, ci=a.source.ci or a.ci))
            else:
                level = max((r.level for r in a.refs), default=0)
                prog = program(expr, self.scope, self.changes)
                ref = FieldRef(target, "derived", level, cases=a.cases, program=prog,
                               program_at=self.changes)  # fmt: skip
                self.scope.bind(target, ref)

    def cmd_rename(self, cmd: Command) -> None:
        args = words(cmd)
        for i in range(len(args) - 2):
            if args[i + 1].lower() != "as":
                continue
            # Quotes may wrap part of a name: rename "Authentication".* AS *
            src, dst = args[i].replace('"', ""), args[i + 2].replace('"', "")
            if "*" in src or "*" in dst:
                self.scope.defs.append(Rename(src, dst))
            else:
                self.scope.bind(dst, self.resolve(src))

    def cmd_regex(self, cmd: Command) -> None:
        m = re.fullmatch(
            r"\s*(?:([^\s=!\"]+|\"[^\"]*\")\s*(!?=)\s*)?(\".*\"|\S+)\s*", cmd.args, re.S
        )
        if m is None:
            self.add(Opaque(self.text(cmd), Reason.UNSUPPORTED_COMMAND, "regex"), self.level)
            return
        ref = self.resolve(unquote(m.group(1))[0] if m.group(1) else RAW_TEXT)
        value = eval_string(m.group(3)) if m.group(3).startswith('"') else m.group(3)
        cs = not value.startswith("(?i)")
        pred = predicate(ref, Op.REGEX_MATCH, value, "regex", cs)
        self.add(Not(pred) if m.group(2) == "!=" else pred, ref.level)

    def groups(self, regex: str, source: FieldRef) -> None:
        """rex: named groups become derived fields; a group that spans the whole
        pattern is non-null exactly when the pattern matches."""
        whole = _whole_group(regex)
        for name in _GROUP.findall(regex):
            present = None
            if whole is not None and whole[0] == name:
                cs = not whole[1].startswith("(?i)")
                present = predicate(source, Op.REGEX_MATCH, whole[1], "rex", cs)
            prog = rex_program(source, regex, name, self.changes)
            ref = FieldRef(name, "derived", source.level, present=present, program=prog,
                           program_at=self.changes)  # fmt: skip
            self.scope.bind(name, ref)

    def cmd_rex(self, cmd: Command) -> None:
        opts, rest = _options(words(cmd))
        ref = self.resolve(opts.get("field", RAW_TEXT))
        if opts.get("mode") == "sed":
            self.derive(opts.get("field", RAW_TEXT), ref.level)
        for word in rest:
            if word.startswith('"'):
                self.groups(eval_string(word), ref)

    def cmd_spath(self, cmd: Command) -> None:
        opts, rest = _options(words(cmd))
        path = opts.get("path", unquote(rest[0])[0] if rest else None)
        out = opts.get("output", path)
        if out:
            self.derive(out, self.resolve(opts.get("input", RAW_TEXT)).level)

    def cmd_iplocation(self, cmd: Command) -> None:
        opts, rest = _options(words(cmd))
        level = self.resolve(unquote(rest[-1])[0]).level if rest else self.level
        for name in _IPLOCATION_OUT:
            self.derive(opts.get("prefix", "") + name, level)

    def cmd_addtotals(self, cmd: Command) -> None:
        opts, rest = _options(words(cmd))
        refs = [self.resolve(unquote(w)[0]) for w in rest]
        self.derive(opts.get("fieldname", "Total"), self.level_of(refs))

    def cmd_strcat(self, cmd: Command) -> None:
        _, rest = _options(words(cmd))
        if rest:
            refs = [self.resolve(unquote(w)[0]) for w in rest[:-1] if not w.startswith('"')]
            self.derive(unquote(rest[-1])[0], self.level_of(refs))

    def cmd_cyberchef(self, cmd: Command) -> None:
        # The CyberChef app's command decodes ``infield`` into ``outfield``.
        opts, _ = _options(words(cmd))
        level = self.resolve(opts.get("infield", RAW_TEXT)).level
        self.derive(opts.get("outfield", "output"), level)

    def cmd_foreach(self, cmd: Command) -> None:
        # The bracketed body is a template of eval commands, not a subsearch.
        self.spawned.update(range(len(cmd.subs)))

    def cmd_lookup(self, cmd: Command) -> None:
        _, args = _options(words(cmd))
        if not args:
            self.add(
                Opaque(self.text(cmd), Reason.UNRESOLVED_LOOKUP, "lookup without a table"),
                self.level,
            )
            return
        name, rest = args[0], args[1:]
        cut = next((i for i, w in enumerate(rest) if w.upper() in ("OUTPUT", "OUTPUTNEW")), None)
        ins, outs = (rest, []) if cut is None else (rest[:cut], rest[cut + 1 :])
        inputs = [(col, self.resolve(ev)) for col, ev in _pairs(ins)]
        level = self.level_of([ref for _, ref in inputs])
        lk = Lookup(name, inputs, {alias: col for col, alias in _pairs(outs)}, level)
        for alias in lk.outputs:
            self.scope.bind(alias, FieldRef(alias, "derived", level, lookup=lk))

    # -- aggregations ------------------------------------------------------------------

    def cmd_stats(self, cmd: Command, keep: bool = False) -> None:
        aggs, outputs, by = parse_aggregations(words(cmd))
        self.aggregate(Agg(0, by, outputs, keep), {"by": by, "aggregations": aggs})

    def cmd_eventstats(self, cmd: Command) -> None:
        self.cmd_stats(cmd, keep=True)

    def cmd_streamstats(self, cmd: Command) -> None:
        self.cmd_stats(cmd, keep=True)

    cmd_chart = cmd_timechart = cmd_geostats = cmd_sistats = cmd_stats

    def cmd_top(self, cmd: Command) -> None:
        _, rest = _options(words(cmd))
        by = [unquote(w)[0] for w in rest if w.lower() != "by"]
        outputs: list[tuple[str, str | None]] = [("count", None), ("percent", None)]
        self.aggregate(Agg(0, by, outputs), {"by": by, "aggregations": [cmd.name]})

    cmd_rare = cmd_top

    def cmd_transaction(self, cmd: Command) -> None:
        _, rest = _options(words(cmd))
        by = [unquote(w)[0] for w in rest]
        outputs: list[tuple[str, str | None]] = [(o, None) for o in _TRANSACTION_OUT]
        self.aggregate(Agg(0, by, outputs, keep=True), {"by": by, "aggregations": ["transaction"]})

    def cmd_tstats(self, cmd: Command) -> None:
        toks = arg_tokens(cmd.args)
        marks: dict[str, int] = {}
        for i, (_, tok) in enumerate(toks):
            if tok.lower() in ("from", "where", "by"):
                marks.setdefault(tok.lower(), i)
        head = [t for _, t in toks[: min(marks.values(), default=len(toks))] if t != ","]
        aggs, outputs, _ = parse_aggregations(head)
        by = self._by(toks, marks)
        if "where" in marks:
            start = toks[marks["where"]][0] + len("where")
            stop = toks[marks["by"]][0] if marks.get("by", -1) > marks["where"] else len(cmd.args)
            self.search(cmd.args[start:stop], cmd.offset + start)
        datamodel = self._datamodel(toks, marks)
        main = self.params[self.base]
        if datamodel and "datamodel" not in main:
            main.update({"datamodel": datamodel, "by": by})
        agg = Agg(0, by, outputs, datamodel=True)
        self.aggregate(agg, {"by": by, "aggregations": aggs})

    @staticmethod
    def _by(toks: list[tuple[int, str]], marks: dict[str, int]) -> list[str]:
        if "by" not in marks:
            return []
        words = [t for _, t in toks[marks["by"] + 1 :] if t != ","]
        return [unquote(w)[0] for w in words if not OPTION.fullmatch(w)]

    @staticmethod
    def _datamodel(toks: list[tuple[int, str]], marks: dict[str, int]) -> str | None:
        if "from" not in marks:
            return None
        text = " ".join(t for _, t in toks[marks["from"] + 1 : marks["from"] + 4])
        m = re.match(r"datamodel\s*[=:]?\s*\"?([\w.]+)", text)
        return m.group(1) if m else None

    def cmd_mstats(self, cmd: Command) -> None:
        self.add(Opaque(self.text(cmd), Reason.NOT_EVENTS, "mstats: metrics"), self.level)
        toks = arg_tokens(cmd.args)
        marks = {
            t.lower(): i
            for i, (_, t) in reversed(list(enumerate(toks)))
            if t.lower() in ("where", "by")
        }
        head = [t for _, t in toks[: min(marks.values(), default=len(toks))] if t != ","]
        aggs, outputs, _ = parse_aggregations(head)
        by = self._by(toks, marks)
        self.aggregate(Agg(0, by, outputs), {"by": by, "aggregations": aggs})

    # -- where events come from --------------------------------------------------------

    def cmd_from(self, cmd: Command) -> None:
        m = re.fullmatch(r"\s*datamodel\s*[:=]?\s*\"?([\w.]+)\"?\s*", cmd.args)
        if m is None:
            self.add(Opaque(self.text(cmd), Reason.UNSUPPORTED_COMMAND, "from"), self.level)
        else:
            self.params[self.base].setdefault("datamodel", m.group(1))

    def cmd_datamodel(self, cmd: Command) -> None:
        _, rest = _options(words(cmd))
        names = [w for w in rest if w.lower() not in ("search", "flat")]
        if names:
            self.params[self.base].setdefault("datamodel", ".".join(names[:2]))

    def cmd_inputlookup(self, cmd: Command) -> None:
        opts, _ = _options(words(cmd))
        if self.position == 0 and opts.get("append", "f").lower() not in ("t", "true", "1"):
            rest = " | ".join(self.text(c) for c in self.commands[self.position :])
            self.add(Opaque(rest, Reason.NOT_EVENTS, "inputlookup: a lookup table"), self.level)
            self.done = True  # the rest filters table rows, not events

    # -- subsearches ---------------------------------------------------------------------

    def cmd_join(self, cmd: Command) -> None:
        opts, rest = _options(words(cmd))
        keys = [unquote(w)[0] for w in rest if not w.startswith("\ue000")]
        for k in range(len(cmd.subs)):
            params = {"command": "join", "type": opts.get("type", "inner")}
            self.spawn(k, params=params, join_keys=keys)

    def cmd_appendpipe(self, cmd: Command) -> None:
        for k in range(len(cmd.subs)):
            self.spawn(k, params={"command": "appendpipe"}, inherit=True)

    def cmd_map(self, cmd: Command) -> None:
        m = re.search(r"search\s*=\s*(\"[^\"\\]*(?:\\.[^\"\\]*)*\")", cmd.args, re.S)
        if m is not None:
            self.spawn(-1, params={"command": "map"}, text=eval_string(m.group(1)))
        elif not cmd.subs:
            self.add(Opaque(self.text(cmd), Reason.UNSUPPORTED_COMMAND, "map"), self.level)

    # -- scoring -----------------------------------------------------------------------------

    def cmd_fit(self, cmd: Command) -> None:
        # A model's verdict is a new field; every later filter reads the scored results.
        self.aggregate(Agg(0, [], [], keep=True), {"command": self.text(cmd)})
        self.floor = self.level
        self.add(
            Opaque(self.text(cmd), Reason.NOT_EVENTS, "MLTK fit/apply: model scoring"), self.level
        )

    cmd_apply = cmd_fit

    def cmd_anomalydetection(self, cmd: Command) -> None:
        opts, _ = _options(words(cmd))
        if opts.get("action", "filter") not in ("annotate", "summary"):
            self.add(
                Opaque(self.text(cmd), Reason.UNSUPPORTED_COMMAND, "anomalydetection"), self.level
            )
