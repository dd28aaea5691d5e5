"""The faulty declarations a scenario can mix in, by name.

Scenario files name them; the generator plans them; the replay report counts
them. One list, so the three agree.
"""

from __future__ import annotations

MOTHER_ID_MISMATCH = "mother_id_mismatch"  # the mother's ID differs from the certificate's
UNKNOWN_BIRTH_CERTIFICATE = "unknown_birth_certificate"  # no such certificate at the hospital
ALREADY_DEAD = "already_dead"  # the deceased's death is already registered
DUPLICATE_SUBMISSION = "duplicate_submission"  # the same declaration sent twice (same key)
MISSING_FIELDS = "missing_fields"  # required Form 01/02 fields left empty
# A birth declared years late, after the child's card entitlement ended: the
# birth and residence are registered, VSS refuses the card (CHILD_TOO_OLD), and
# the dossier completes with that refusal.
LATE_BIRTH_DECLARATION = "late_birth_declaration"

FAULT_KINDS = (
    MOTHER_ID_MISMATCH,
    UNKNOWN_BIRTH_CERTIFICATE,
    ALREADY_DEAD,
    DUPLICATE_SUBMISSION,
    MISSING_FIELDS,
    LATE_BIRTH_DECLARATION,
)
BIRTH_FAULTS = (
    MOTHER_ID_MISMATCH,
    UNKNOWN_BIRTH_CERTIFICATE,
    DUPLICATE_SUBMISSION,
    MISSING_FIELDS,
    LATE_BIRTH_DECLARATION,
)
DEATH_FAULTS = (ALREADY_DEAD, DUPLICATE_SUBMISSION, MISSING_FIELDS)
