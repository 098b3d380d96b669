//! The double-sign guard: a durable record of every vote and proposal this validator signed
//! at its current height, checked before anything is signed.
//!
//! Malachite's write-ahead log is meant to make a restarted validator re-derive exactly the
//! messages it signed before, and it stops when a re-derived message differs. But once replay
//! ends, nothing in the engine remembers a recorded vote that replay failed to re-derive, and
//! the node could sign a conflicting one (the 100-kill crash storm once ended with a log
//! holding two precommits of one node for one round). A host-side bug could do the same: a
//! restarted proposer that built a second block for a round it had proposed in. This guard
//! is the last line, as CometBFT's last-sign state is: a second, different message for the
//! same (height, round, kind) is refused, and so is any message for a height below one
//! already signed at. Re-signing the very same message is allowed (a restarted node
//! re-publishes what it signed). A refusal stops consensus on this node, loudly: a stalled
//! validator is recoverable, a double-signing one is not.
//!
//! Layout: one small file beside the consensus log, postcard-encoded [`Record`] (the height
//! and, per (kind, round), the digest of the bytes signed), replaced atomically and fsynced
//! before the signature leaves the signer. It holds one height, so it stays small: at most
//! three entries per round.

use alloy_primitives::{keccak256, B256};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// What was signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SignedKind {
    Prevote,
    Precommit,
    Proposal,
}

impl std::fmt::Display for SignedKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SignedKind::Prevote => "prevote",
            SignedKind::Precommit => "precommit",
            SignedKind::Proposal => "proposal",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error(
        "refusing to sign a {kind} at height {height}, round {round}: this validator already \
         signed a different one there (it would be a double-sign)"
    )]
    Conflict {
        kind: SignedKind,
        height: u64,
        round: u32,
    },
    #[error(
        "refusing to sign at height {height}: this validator already signed at height \
         {signed} (was the database restored or wiped while the signing record was kept?)"
    )]
    Regression { height: u64, signed: u64 },
    #[error("cannot record what this validator signs: {0}")]
    Io(#[from] std::io::Error),
    #[error("the record of what this validator signed is unreadable: {0}")]
    Corrupt(String),
}

/// Where the guard keeps its record. `store` must be durable when it returns.
pub trait SignLog: Send + Sync + 'static {
    fn load(&self) -> std::io::Result<Option<Vec<u8>>>;
    fn store(&self, bytes: &[u8]) -> std::io::Result<()>;
}

/// A file replaced atomically (written beside, fsynced, renamed, directory fsynced).
pub struct FileSignLog {
    path: PathBuf,
}

impl FileSignLog {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileSignLog { path: path.into() }
    }
}

impl SignLog for FileSignLog {
    fn load(&self) -> std::io::Result<Option<Vec<u8>>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn store(&self, bytes: &[u8]) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// A record in memory that outlives the signer using it: for tests and the simulation,
/// where it stands for the disk across a node's restarts.
#[derive(Clone, Default)]
pub struct MemorySignLog(Arc<Mutex<Option<Vec<u8>>>>);

impl SignLog for MemorySignLog {
    fn load(&self) -> std::io::Result<Option<Vec<u8>>> {
        Ok(self.0.lock().clone())
    }

    fn store(&self, bytes: &[u8]) -> std::io::Result<()> {
        *self.0.lock() = Some(bytes.to_vec());
        Ok(())
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Record {
    height: u64,
    signed: BTreeMap<(SignedKind, u32), B256>,
}

/// Checks and records every message before it is signed.
pub struct SignGuard {
    log: Box<dyn SignLog>,
    record: Mutex<Record>,
}

impl SignGuard {
    /// Reads the record `log` holds (none yet: nothing signed).
    pub fn open(log: impl SignLog) -> Result<SignGuard, GuardError> {
        let record = match log.load()? {
            Some(bytes) => {
                postcard::from_bytes(&bytes).map_err(|e| GuardError::Corrupt(e.to_string()))?
            }
            None => Record::default(),
        };
        Ok(SignGuard {
            log: Box::new(log),
            record: Mutex::new(record),
        })
    }

    /// Allows signing `bytes` as the `kind` of (`height`, `round`) if it is new there, or the
    /// very message signed there before; records it durably first. Blocking (an fsync).
    pub fn admit(
        &self,
        kind: SignedKind,
        height: u64,
        round: u32,
        bytes: &[u8],
    ) -> Result<(), GuardError> {
        let digest = keccak256(bytes);
        let mut record = self.record.lock();
        if height < record.height {
            return Err(GuardError::Regression {
                height,
                signed: record.height,
            });
        }
        let mut next = if height > record.height {
            Record {
                height,
                signed: BTreeMap::new(),
            }
        } else {
            record.clone()
        };
        match next.signed.get(&(kind, round)) {
            Some(signed) if *signed == digest => return Ok(()),
            Some(_) => {
                return Err(GuardError::Conflict {
                    kind,
                    height,
                    round,
                })
            }
            None => {
                next.signed.insert((kind, round), digest);
            }
        }
        let bytes = postcard::to_stdvec(&next).map_err(|e| GuardError::Corrupt(e.to_string()))?;
        self.log.store(&bytes)?;
        *record = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_message_may_be_signed_again_a_different_one_never() {
        let log = MemorySignLog::default();
        let guard = SignGuard::open(log.clone()).expect("open");
        guard
            .admit(SignedKind::Precommit, 92, 6, b"precommit A")
            .expect("first");
        guard
            .admit(SignedKind::Precommit, 92, 6, b"precommit A")
            .expect("the same again");
        assert!(matches!(
            guard.admit(SignedKind::Precommit, 92, 6, b"precommit B"),
            Err(GuardError::Conflict { round: 6, .. })
        ));
        // Other kinds and rounds are separate.
        guard
            .admit(SignedKind::Prevote, 92, 6, b"prevote")
            .expect("prevote");
        guard
            .admit(SignedKind::Precommit, 92, 7, b"precommit B")
            .expect("next round");

        // A restarted signer reads the record: the refusal survives the restart.
        let restarted = SignGuard::open(log).expect("reopen");
        assert!(matches!(
            restarted.admit(SignedKind::Precommit, 92, 6, b"precommit B"),
            Err(GuardError::Conflict { .. })
        ));
        restarted
            .admit(SignedKind::Precommit, 92, 6, b"precommit A")
            .expect("the recorded one");
    }

    #[test]
    fn a_new_height_drops_the_old_one_and_no_height_goes_back() {
        let log = MemorySignLog::default();
        let guard = SignGuard::open(log.clone()).expect("open");
        guard
            .admit(SignedKind::Proposal, 5, 0, b"proposal")
            .expect("h5");
        guard
            .admit(SignedKind::Proposal, 6, 0, b"another proposal")
            .expect("h6");
        assert!(matches!(
            guard.admit(SignedKind::Proposal, 5, 0, b"proposal"),
            Err(GuardError::Regression {
                height: 5,
                signed: 6
            })
        ));
        let record: Record =
            postcard::from_bytes(&log.load().expect("load").expect("stored")).expect("decode");
        assert_eq!(record.height, 6);
        assert_eq!(record.signed.len(), 1, "only the current height is kept");
    }

    #[test]
    fn a_file_record_survives_and_garbage_is_refused_with_a_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("signed");
        let guard = SignGuard::open(FileSignLog::new(&path)).expect("open");
        guard
            .admit(SignedKind::Prevote, 3, 1, b"prevote")
            .expect("record");
        drop(guard);
        let guard = SignGuard::open(FileSignLog::new(&path)).expect("reopen");
        assert!(matches!(
            guard.admit(SignedKind::Prevote, 3, 1, b"other"),
            Err(GuardError::Conflict { .. })
        ));
        std::fs::write(&path, b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff").expect("write");
        assert!(matches!(
            SignGuard::open(FileSignLog::new(&path)),
            Err(GuardError::Corrupt(_))
        ));
    }
}
