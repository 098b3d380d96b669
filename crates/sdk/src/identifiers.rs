//! Industrial identifiers: verifying a resolution without trusting the node.

use crate::proof::ProvenStorage as _;
use trellis_system::identifiers::{Identifier, Record, IDENTIFIERS_ADDRESS};
use trellis_system::proof::StateProof;
use trellis_system::{Identifiers, MapSlots};

use crate::proof::{verify_contract, Trusted, VerifyError};

/// The record of `identifier` as `proof` (from `GET /api/handles/{id}?proof=true`) establishes
/// it against the trusted validators: `Some(record)`, or `None` when the proof shows that the
/// identifier is not registered.
pub fn verify(
    identifier: &Identifier,
    proof: &StateProof,
    trusted: &Trusted,
) -> Result<Option<Record>, VerifyError> {
    let state = verify_contract(proof, trusted, IDENTIFIERS_ADDRESS)?;
    let mut own = state.storage();
    // Reading a record touches only the identifiers contract's own storage.
    let mut governance = MapSlots::empty();
    Identifiers::new(&mut own, &mut governance)
        .get(identifier)
        .map_err(|e| VerifyError::NotProven(e.to_string()))
}
