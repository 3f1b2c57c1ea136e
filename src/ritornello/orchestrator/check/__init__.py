"""An invariant checker over a store: reads everything through the ``Store`` interface (so it
works on memory, SQLite and DynamoDB), writes nothing, and reports what breaks the rules the
engine keeps. Each invariant is one function and one ``Violation.kind``:

``journal`` (``_invocation.check_journal``)
    Entries are exactly indices 0 .. journal_len - 1, each a JSON object with a known
    ``kind``; entry 0 is the input and an output can only be last. Every completion names an
    existing entry of a waiting kind (or ``CANCEL_INDEX``), once, with a value or a failure.
``json`` (``_values.check_values``, ``_values.check_state_values``)
    Every stored value is JSON by the rules values are taken in with (``_json.json_input``:
    no ``NaN`` or infinities, UTF-8, integers within 64 bits): journal entries, completions,
    results, and the state rows of every object key an invocation names. The standard
    library's parser reads ``Infinity`` or ``1e999`` (and so the structural rules pass them);
    a handler's replay or another SDK would not.
``state`` (``_invocation.check_record``)
    The status is one of ``STATUSES``; a terminal invocation has a result (``{"value"}`` or
    ``{"failure"}``) and nothing to wait on; a live one has no result; ``waiting`` is set only
    when suspended (or paused from suspended) and names entries of a waiting kind; ``next_at``
    is set exactly when backing-off or scheduled; the partition is the one its id/key hashes to.
``call`` (``_relations.check_calls``)
    A call entry names its derived callee, which exists (unless purged by retention after it
    delivered: the entry then has its completion) and names the entry back as its caller. A
    terminal callee has delivered its result to its caller, unless the caller is terminal or
    gone.
``liveness`` and ``stuck`` (``_liveness.check_liveness``)
    Every unfinished invocation waits on something real: running or pending (driven),
    scheduled with a start timer, backing-off with a retry timer, paused (an operator), or
    suspended on entries each of which is a sleep with a timer, a call whose callee is
    unfinished, an awakeable, or a workflow promise with a registered waiter. A suspended
    invocation holding a completion for an entry it waits on — or a cancellation its handler
    never saw — is ``stuck``: a wake-up was lost and only a recovery would re-drive it.
``timer`` (``_liveness.check_timers``)
    Every timer belongs to an existing unfinished invocation of its partition and matches its
    state (sleep: an uncompleted sleep entry; retry: backing-off at ``next_at``; start:
    scheduled at ``next_at``), and every uncompleted sleep of an unfinished invocation has one.
``exclusive`` (``_relations.check_exclusive``)
    At most one unfinished exclusive (or workflow-run) invocation per object key is active
    (running, suspended, backing-off or paused); the others are pending or scheduled.
``permit`` (``_permits.check_permits``)
    Every permit row of a named limit belongs to an unfinished invocation, at a permit entry
    whose step is not journaled yet (or at its own permit), granted exactly when the
    invocation holds the grant; an invocation suspended on a permit has a row (else it is
    ``stuck``); no limit set through the admin API has more permits out than its concurrency.
``schedule`` (``_schedules.check_schedules``)
    A cron schedule (docs/schedules.md) is well formed: its cron parses in its time zone (the
    scheduler's own ``cron_of``), its overlap is one of ``OVERLAP_POLICIES``, its target names
    a service and a handler, its input passes the scheduler's check (``_json.json_input``, as
    an ingress body: nesting at most 128 levels too), its partition is the one its id hashes
    to, its counters are >= 0 and ``checked_until >= created_at`` (``checked_until`` only
    moves forward from the creation). ``last_fire_at``, ``last_invocation_id`` and
    ``fires >= 1`` are set together (each fire sets all three in one compare-and-set); a
    skip or a miss is counted only beside a fire (a skip needs a previous invocation, and
    only with overlap ``skip``); ``created_at < last_fire_at <= checked_until`` and
    ``last_fire_at`` is a fire time of the cron. The last invocation, unless purged, is of
    the schedule's service, handler and key with the idempotency key
    ``schedule:{id}:{last_fire_at}``; no two invocations of one target hold the same
    ``schedule:`` idempotency key (the stores' unique index); and a fire-time invocation the
    scheduler may submit again (the last, or one after ``checked_until``) is the one its
    idempotency key finds (``find_idempotent``), else that fire would create a second.
    Not reported, as the engine
    allows them: an invocation for a fire time after ``checked_until`` (a crash at
    ``after-fire``: the next pass records it), fire-time invocations the counters do not
    count (retention purges; a fire that lost to a resume), and invocations whose
    ``schedule:`` key names another target (the ingress takes any idempotency key).
``acknowledged`` (``_relations.check_expected``)
    Ids the caller was given (``expect_ids``) exist and, with ``expect_terminal``, are
    finished (without ``expect_ids``: every invocation is finished).

The check is exact on a quiescent store. Beside a live orchestrator each invocation is read
consistently (its record is re-read after its journal until its version holds still), but the
cross-invocation rules compare reads made at different moments, and an invocation being woken
still says ``suspended``: pass ``recheck_s`` to read everything again after a pause and keep
only the violations seen both times.

Modules: ``_store`` (``check_store``: reading, one pass, the recheck), ``_report`` (what it
reports), and one module per group of rules named above.
"""

from ._report import KINDS, CheckReport, Violation
from ._store import check_store

__all__ = ["KINDS", "CheckReport", "Violation", "check_store"]
