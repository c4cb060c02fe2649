//! Mutexes that survive a panic: a panicking request must not poison a lock for every later one.
//! It recovers the data a panicking holder left (the maps it guards stay usable); it must not hide the panic itself, which is logged where it happened.

use std::sync::{Mutex, MutexGuard};

/// [`Mutex::lock`] that clears a poisoned lock and takes it anyway.
pub trait LockExt<T> {
    fn locked(&self) -> MutexGuard<'_, T>;
}

impl<T> LockExt<T> for Mutex<T> {
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(|poisoned| {
            tracing::warn!("recovering a lock a panicking request poisoned");
            self.clear_poison();
            poisoned.into_inner()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_lock_poisoned_by_a_panic_is_taken_again() {
        let m = Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            panic!("a request panics holding the lock");
        })
        .join();
        assert!(m.is_poisoned());
        *m.locked() += 1;
        assert!(!m.is_poisoned());
        assert_eq!(*m.locked(), 2);
    }
}
