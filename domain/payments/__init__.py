"""The one home of money: charges and refunds as recorded movements.

Every movement is recorded PENDING under a deterministic provider key before the
gateway is asked, and settled from the gateway's answer (or, when the answer was
lost, from a lookup at the gateway):

- `payment`: the `Payment` aggregate, one charge and the refunds made against it;
  their state machines (docs/payments.md draws them).
- `refunds`: the pure rules of refunds (points-refund quotes, settling from a lookup).
- `book`: the ledger side — record, settle and reserve in one transaction each;
  other areas register what settling a charge or releasing a refund means for them.
- `flows`: the async orchestration record → call → settle, and lookups.
- `reconcile`: comparing the ledger with the gateway's own record.
"""
