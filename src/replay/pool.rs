//! Packet buffers that go round instead of being allocated per packet: the capture thread
//! and the workers take them, the workers and the sender give them back.

use crossbeam_channel::{Receiver, Sender};

/// A shared free list of byte buffers. Clones share the list.
#[derive(Debug, Clone)]
pub struct BufferPool {
    free_tx: Sender<Vec<u8>>,
    free_rx: Receiver<Vec<u8>>,
    capacity: usize,
}

impl BufferPool {
    /// A pool keeping up to `buffers` spare buffers; new ones start with `capacity` bytes.
    pub fn new(buffers: usize, capacity: usize) -> BufferPool {
        let (free_tx, free_rx) = crossbeam_channel::bounded(buffers);
        BufferPool {
            free_tx,
            free_rx,
            capacity,
        }
    }

    /// An empty buffer: a recycled one when there is one, else a new one.
    pub fn take(&self) -> Vec<u8> {
        match self.free_rx.try_recv() {
            Ok(mut buffer) => {
                buffer.clear();
                buffer
            }
            Err(_) => Vec::with_capacity(self.capacity),
        }
    }

    /// Returns a buffer for reuse; dropped when the pool already has enough.
    pub fn give(&self, buffer: Vec<u8>) {
        let _ = self.free_tx.try_send(buffer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_empty() {
        let pool = BufferPool::new(1, 64);
        let mut buffer = pool.take();
        buffer.extend_from_slice(b"abc");
        let address = buffer.as_ptr();
        pool.give(buffer);
        let again = pool.take();
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), address);
    }

    #[test]
    fn a_full_pool_drops_extra_buffers() {
        let pool = BufferPool::new(1, 8);
        pool.give(vec![1]);
        pool.give(vec![2]);
        assert_eq!(pool.free_rx.len(), 1);
    }
}
