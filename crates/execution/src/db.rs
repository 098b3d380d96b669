//! revm's read interface over a store snapshot.

use alloy_primitives::{Address, B256, U256};
use revm::bytecode::Bytecode;
use revm::database_interface::{DBErrorMarker, DatabaseRef};
use revm::state::AccountInfo;
use trellis_primitives::Height;
use trellis_storage::{StateView, StoreError, EMPTY_CODE_HASH};

/// A store error seen through revm.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct DbError(#[from] pub StoreError);

impl DBErrorMarker for DbError {}

/// Read-only EVM database backed by a consistent [`StateView`].
pub struct StoreDb<'a> {
    view: &'a StateView,
}

impl<'a> StoreDb<'a> {
    pub fn new(view: &'a StateView) -> Self {
        StoreDb { view }
    }
}

impl DatabaseRef for StoreDb<'_> {
    type Error = DbError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        let Some(acc) = self.view.account(&address)? else {
            return Ok(None);
        };
        let code = if acc.code_hash == EMPTY_CODE_HASH {
            Some(Bytecode::default())
        } else {
            None
        };
        Ok(Some(AccountInfo {
            balance: acc.balance,
            nonce: acc.nonce,
            code_hash: acc.code_hash,
            code,
            ..Default::default()
        }))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        Ok(self
            .view
            .code(&code_hash)?
            .map(Bytecode::new_raw)
            .unwrap_or_default())
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, Self::Error> {
        Ok(self.view.storage(&address, &index)?)
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, Self::Error> {
        Ok(self
            .view
            .block(Height(number))?
            .map(|b| b.hash())
            .unwrap_or_default())
    }
}
