"""`lane report RUN`: one self-contained HTML file with a run's evidence, for people who do not use the CLI.

Outputs and verdicts, every rule's expected, observed, failing sample and detail, inputs with their
SHA-256, products with theirs, timings, the certification in force, and the result of verifying the
run's receipt chain and certified bytes (``batchlane.verify``). No scripts, no external assets (one
inline stylesheet, readable in a browser and printable). All data is escaped: values in a product
are untrusted and must not become markup.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any

from batchlane import __version__
from batchlane.cli.render import evidence_text
from batchlane.receipts import (
    CheckReceipt,
    FileDigest,
    GateReceipt,
    MaterializeReceipt,
    RunManifest,
    parse_manifest,
    parse_receipt,
)
from batchlane.state import run_closures
from batchlane.stores.base import Backend, ReceiptRow
from batchlane.verify import verify_run

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 72rem;
       color: #1b1f24; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { font-size: 1.2rem; margin-top: 2rem;
     border-bottom: 1px solid #d0d7de; } h3 { font-size: 1rem; margin: 1.2rem 0 .4rem; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0 1rem; }
th, td { border: 1px solid #d0d7de; padding: .25rem .45rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12.5px;
              overflow-wrap: anywhere; word-break: break-all; }
.PASS, .certified, .memoized, .pass, .ok { color: #116329; font-weight: 600; }
.FAIL, .rejected, .failed, .fail, .bad, .blocked { color: #b3261e; font-weight: 600; }
.pending, .OPEN { color: #9a6700; font-weight: 600; }
.meta { color: #57606a; } .error { color: #b3261e; white-space: pre-wrap; }
section.output { page-break-inside: avoid; }
@media print { body { margin: 0; max-width: none; font-size: 11px; } h2 { page-break-after: avoid; }
               tr { page-break-inside: avoid; } }
"""


def e(value: Any) -> str:
    """Escape anything for HTML text and attribute context."""
    return html.escape("" if value is None else str(value), quote=True)


_evidence = evidence_text  # one literal rendering of evidence values for the terminal and the report


def _iso(moment: datetime | None) -> str:
    if moment is None:
        return ""
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _state(word: str | None) -> str:
    return f'<span class="{e(word)}">{e(word or "-")}</span>'


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] | None = None, css: str = "") -> str:
    """``rows`` hold already-escaped HTML cells."""
    numeric = numeric or set()
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(r))
        + "</tr>" for r in rows
    )
    return f'<table class="{e(css)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _files(files: list[FileDigest], with_rows: bool) -> str:
    headers = ["file", "size (B)", *(["rows"] if with_rows else []), "sha256", "version"]
    rows = [[f"<code>{e(f.uri)}</code>", e(f"{f.size:,}"), *([e("" if f.rows is None else f"{f.rows:,}")]
             if with_rows else []), f"<code>{e(f.sha256)}</code>", f"<code>{e(f.version or '')}</code>"]
            for f in files]
    return _table(headers, rows, numeric={1, 2} if with_rows else {1}, css="files")


def build_report(backend: Backend, run_id: str, *, now: datetime | None = None) -> str:
    """The HTML document. Raises LookupError for an unknown run."""
    run = backend.ledger.get_run(run_id)
    if run is None:
        raise LookupError(f"no run {run_id!r} in the {backend.name} store")
    rows = backend.ledger.receipts(run_id)
    manifests: list[RunManifest] = []
    receipts: dict[str, list[tuple[ReceiptRow, Any]]] = {}
    for row in rows:
        try:
            data = backend.store.get(row.key)
            parsed: Any = parse_manifest(data) if row.kind == "manifest" else parse_receipt(data)
        except Exception as exc:  # noqa: BLE001  # verification says what is wrong; show what can be shown
            parsed = exc
        if row.kind == "manifest":
            if isinstance(parsed, RunManifest):
                manifests.append(parsed)
        else:
            receipts.setdefault(row.output, []).append((row, parsed))
    closures = run_closures(backend, run_id, run.outputs)
    verdict = manifests[-1].verdict if manifests else "OPEN"
    report = verify_run(backend, run_id)
    generated = _iso(now or datetime.now(UTC))

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>lane report · {e(run.lane)} · run {e(run_id)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Run <code>{e(run_id)}</code> of lane <code>{e(run.lane)}</code>: {_state(verdict)}</h1>",
        (f'<p class="meta">trigger {e(run.trigger)} · started {e(_iso(run.started_at))} · spec digest '
         f"<code>{e(run.spec_digest)}</code> · spec {e(run.spec_path)} · report generated {e(generated)} by "
         f"batchlane {e(__version__)}</p>"),
        '<h2 id="verification">Verification</h2>',
    ]
    if report.ok:
        parts.append(f'<p id="verification-result" class="ok">verified: {report.receipts} receipts, chain intact, '
                     f"{report.files} certified file(s) match their SHA-256</p>")
    else:
        parts.append(f'<p id="verification-result" class="bad">verification failed: {len(report.problems)} '
                     "problem(s)</p><ul>" + "".join(f"<li>{e(p)}</li>" for p in report.problems) + "</ul>")

    parts.append('<h2 id="outputs">Outputs</h2>')
    summary = []
    for name in run.outputs:
        closure = closures[name]
        pointer = backend.ledger.current(run.lane, name)
        in_force = "none" if pointer is None else f"run {pointer.run_id} attempt {pointer.attempt}" + (
            f" (revoked: {pointer.revoked})" if pointer.revoked else "")
        problem = ", ".join(closure.failing_rules) or (closure.error or "")
        summary.append([f'<a href="#output-{e(name)}">{e(name)}</a>', _state(closure.verdict), _state(closure.state),
                        e(closure.attempts), e(problem), e(in_force)])
    parts.append(_table(["output", "verdict", "state", "attempts", "failing rules / error", "certification in force"],
                        summary, numeric={3}, css="summary"))

    for name in run.outputs:
        parts.append(f'<section class="output" id="output-{e(name)}"><h2>{e(name)}</h2>')
        for row, receipt in receipts.get(name, []):
            parts.append(_receipt_html(row, receipt, diagnostics_of(backend, receipt)))
        if not receipts.get(name):
            parts.append("<p>no receipts: this output never started</p>")
        parts.append("</section>")

    parts.append('<h2 id="manifests">Run manifests</h2>')
    parts.append(_table(["#", "closed at", "verdict", "outputs"], [
        [e(m.sequence), e(_iso(m.closed_at)), _state(m.verdict),
         e(", ".join(f"{n}: {c.state}" for n, c in m.outputs.items()))] for m in manifests
    ], numeric={0}, css="manifests") if manifests else "<p>the run was never closed</p>")
    parts.append('<h2 id="receipts">Receipts</h2>')
    parts.append(_table(["key", "sha256 (ledger)", "status", "written"], [
        [f"<code>{e(r.key)}</code>", f"<code>{e(r.digest)}</code>", e(r.status), e(_iso(r.created_at))] for r in rows
    ], css="receipts"))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def diagnostics_of(backend: Backend, receipt: Any) -> str | None:
    """The attempt's captured traceback and output (untrusted text), when its receipt names them."""
    key = getattr(receipt, "diagnostics", None)
    if not isinstance(receipt, MaterializeReceipt) or not key:
        return None
    try:
        return backend.store.get(key).decode("utf-8", errors="replace")
    except Exception as exc:  # the report shows what it can: a missing file is said, not fatal
        return f"(diagnostics {key} cannot be read: {exc})"


def _receipt_html(row: ReceiptRow, receipt: Any, diagnostics: str | None = None) -> str:
    title = f'<h3 id="{e(row.key)}">attempt {e(row.attempt)} · {e(row.kind)} · <code>{e(row.key)}</code></h3>'
    if isinstance(receipt, Exception):
        return title + f'<p class="error">unreadable: {e(type(receipt).__name__)}: {e(receipt)}</p>'
    if isinstance(receipt, MaterializeReceipt):
        seconds = (receipt.finished_at - receipt.started_at).total_seconds()
        body = [
            (f"<p>status {_state(receipt.status)} · job <code>{e(receipt.job_id)}</code> · started "
             f"{e(_iso(receipt.started_at))} · finished {e(_iso(receipt.finished_at))} · "
             f'<span class="seconds">{seconds:.3f}</span> s</p>'),
            (f'<p class="meta">code <code>{e(receipt.code_fingerprint)}</code> · spec <code>{e(receipt.spec_digest)}'
             f"</code> · memo key <code>{e(receipt.memo_key)}</code></p>"),
        ]
        if receipt.memoized_from:
            body.append(f"<p>memoized: reuses the certification <code>{e(receipt.memoized_from)}</code></p>")
        for item in receipt.inputs:
            body.append(f"<p>input <b>{e(item.name)}</b> (<code>{e(item.pattern)}</code>)</p>")
            if item.product is not None:
                pinned = item.product
                body.append(f'<p class="meta">pinned certification: run <code>{e(pinned.run_id)}</code> attempt '
                            f"{e(pinned.attempt)} · <code>{e(pinned.certification)}</code> · digest "
                            f"<code>{e(pinned.certification_digest)}</code></p>")
            body.append(_files(item.files, with_rows=False))
        if receipt.outputs:
            body.append("<p>product</p>" + _files(receipt.outputs, with_rows=True))
            for file in receipt.outputs:
                if file.schema_:
                    body.append('<p class="meta">schema: ' + e(", ".join(f"{k}: {v}" for k, v in file.schema_.items()))
                                + "</p>")
        if receipt.error:
            body.append(f'<p class="error">{e(receipt.error)}</p>')
        if diagnostics is not None:
            body.append(f'<p class="meta">diagnostics <code>{e(receipt.diagnostics)}</code> sha256 '
                        f'<code>{e(receipt.diagnostics_sha256)}</code></p><pre class="diagnostics">{e(diagnostics)}</pre>')
        return title + "".join(body)
    if isinstance(receipt, CheckReceipt):
        rows = "unknown" if receipt.rows is None else f"{receipt.rows:,}"
        verdict = f'<p>verdict {_state(receipt.verdict)} · {e(rows)} rows · <span class="seconds">'
        body = [verdict + f"{receipt.seconds:.3f}</span> s</p>"]
        if receipt.rules:
            body.append(_table(
                ["rule", "column", "result", "expected", "observed", "failing", "failing sample", "detail"],
                [[e(r.rule), e(r.column or ""), _state("pass" if r.passed else ("WARN" if r.severity == "warn" else "FAIL")), e(_evidence(r.expected)),
                  e(_evidence(r.observed)), e(r.failing_count or ""),
                  e(", ".join(_evidence(v) for v in r.failing_sample)), e(r.detail or "")] for r in receipt.rules],
                numeric={5}, css="rules"))
        if receipt.error:
            body.append(f'<p class="error">{e(receipt.error)}</p>')
        return title + "".join(body)
    if isinstance(receipt, GateReceipt):
        body = [f"<p>decision {_state(receipt.decision)}" + (f" · {e(receipt.reason)}" if receipt.reason else "")
                + "</p>"]
        if receipt.proof:
            body.append("<p>certified bytes</p>" + _files(receipt.proof, with_rows=True))
        return title + "".join(body)
    return title + _fields(receipt)


def _fields(receipt: Any) -> str:
    """Any other receipt kind (e.g. the attempt's begin receipt): every field, as stored."""
    dump = receipt.model_dump(mode="json", by_alias=True) if hasattr(receipt, "model_dump") else {"value": receipt}
    skipped = {"lane", "run_id", "output", "attempt", "kind"}
    return _table(["field", "value"], [[e(name), f"<code>{e(_evidence(value))}</code>"]
                                       for name, value in dump.items() if name not in skipped], css="fields")
