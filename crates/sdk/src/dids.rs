//! DIDs: verifying a resolution without trusting the node.

use crate::proof::ProvenStorage as _;
use trellis_system::dids::{Did, Version, DIDS_ADDRESS};
use trellis_system::proof::StateProof;
use trellis_system::Dids;

use crate::proof::{verify_contract, Trusted, VerifyError};

/// Version `version` of `did` as `proof` (from `GET /1.0/identifiers/{did}?proof=true`)
/// establishes it against the trusted validators (`None`: proven not to exist).
pub fn verify(
    did: &Did,
    version: u64,
    proof: &StateProof,
    trusted: &Trusted,
) -> Result<Option<Version>, VerifyError> {
    let state = verify_contract(proof, trusted, DIDS_ADDRESS)?;
    let mut slots = state.storage();
    Dids::new(&mut slots)
        .version(&did.address, version)
        .map_err(|e| VerifyError::NotProven(e.to_string()))
}
