//! Reading a whole hash map, and deleting a list of its keys, a chunk of
//! entries per system call (BPF_MAP_LOOKUP_BATCH, BPF_MAP_DELETE_BATCH,
//! Linux 5.6). aya 0.14 walks a map with two calls per entry (next key,
//! then lookup): 55 ms for 65,536 counted connections, and the run loop
//! reads CONNS every second to expire idle ones, a twentieth of a core on
//! a busy node; and it deletes with one call per key, one per finished
//! handshake. aya has no batch call, so these are written here, on
//! aya-obj's bindings of the kernel's types.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd};

use aya::Pod;
use aya::maps::{HashMap, IterableMap, MapData};
use aya_obj::generated::{bpf_attr, bpf_attr__bindgen_ty_3, bpf_cmd};

/// Entries asked for per call. A hash map's batch is whole buckets, and a
/// call fails (ENOSPC) when a bucket holds more entries than it may
/// return; a bucket holds a handful, and the count is doubled if not.
const CHUNK: usize = 1024;

/// Past this many entries a call, a bucket is not that full: give up.
const MAX_CHUNK: usize = 1 << 16;

/// A walk that failed, and how many entries it had handed out by then.
#[derive(Debug)]
pub struct Failed {
    pub delivered: usize,
    pub source: io::Error,
}

/// Every entry of the hash map `map`, by chunks, in the map's order.
/// An entry inserted or removed meanwhile may be seen or not, as with any
/// walk of a live map. Errors are the kernel's (EINVAL: no batch
/// operations, before Linux 5.6). Typed by aya, which checked the map's
/// key and value sizes against `K` and `V`: the kernel writes that many
/// bytes per entry into the buffers below.
pub fn for_each<K: Pod, V: Pod>(
    map: &HashMap<MapData, K, V>,
    mut f: impl FnMut(&K, &V),
) -> Result<(), Failed> {
    let fd = map.map().fd().as_fd().as_raw_fd();
    let mut delivered = 0;
    let mut chunk = CHUNK;
    let mut keys: Vec<K> = Vec::new();
    let mut values: Vec<V> = Vec::new();
    // A hash map's batch token is a bucket index.
    let (mut token, mut next) = (0u32, 0u32);
    let mut first = true;
    loop {
        // SAFETY: Pod types are plain data: any bytes, zeros included,
        // are a valid value.
        keys.resize_with(chunk, || unsafe { std::mem::zeroed() });
        values.resize_with(chunk, || unsafe { std::mem::zeroed() });
        let in_batch = if first {
            0
        } else {
            &token as *const u32 as u64
        };
        // SAFETY: the kernel writes at most `count` keys and values into
        // buffers of that many, and the next token into `next`.
        let (err, got) = unsafe {
            call(bpf_cmd::BPF_MAP_LOOKUP_BATCH, fd, |b| {
                b.in_batch = in_batch;
                b.out_batch = &mut next as *mut u32 as u64;
                b.keys = keys.as_mut_ptr() as u64;
                b.values = values.as_mut_ptr() as u64;
                b.count = chunk as u32;
            })
        };
        let over = err.is_some();
        match (err, got) {
            (Some(e), 0) if e.raw_os_error() == Some(libc::ENOSPC) && chunk < MAX_CHUNK => {
                chunk *= 2;
                continue;
            }
            // ENOENT: the walk is over, with this last chunk.
            (Some(e), _) if e.raw_os_error() != Some(libc::ENOENT) => {
                return Err(Failed {
                    delivered,
                    source: e,
                });
            }
            _ => {}
        }
        for (k, v) in keys.iter().zip(&values).take(got.min(chunk)) {
            f(k, v);
        }
        delivered += got.min(chunk);
        if over {
            return Ok(());
        }
        token = next;
        first = false;
    }
}

/// Deletes `keys` from `map`, as many per system call as the kernel takes,
/// and calls `deleted` with each key it deleted. A key not in the map is
/// skipped: the kernel stops at it (ENOENT) after deleting the ones before
/// it, and the rest go in the next call. Errors are the kernel's (EINVAL:
/// no batch operations, before Linux 5.6); keys not reached by then are
/// left to the caller, `delivered` says how far the call got.
pub fn delete<K: Pod, V: Pod>(
    map: &mut HashMap<MapData, K, V>,
    keys: &[K],
    mut deleted: impl FnMut(&K),
) -> Result<(), Failed> {
    let fd = map.map().fd().as_fd().as_raw_fd();
    let mut done = 0;
    while done < keys.len() {
        let rest = &keys[done..];
        // SAFETY: the kernel reads at most `count` keys of the map's key
        // size, which aya checked is `K`'s.
        let (err, got) = unsafe {
            call(bpf_cmd::BPF_MAP_DELETE_BATCH, fd, |b| {
                b.keys = rest.as_ptr() as u64;
                b.count = rest.len().min(u32::MAX as usize) as u32;
            })
        };
        let got = got.min(rest.len());
        rest[..got].iter().for_each(&mut deleted);
        done += got;
        match err {
            None => {}
            // The key at `done` is not there: on past it.
            Some(e) if e.raw_os_error() == Some(libc::ENOENT) => done += 1,
            Some(source) => {
                return Err(Failed {
                    delivered: done,
                    source,
                });
            }
        }
    }
    Ok(())
}

/// One batch command on the map `fd`; `fill` sets the other fields it
/// reads. Returns the kernel's error, if any, and the count it wrote back
/// (entries handed out or deleted, even when it failed part way).
///
/// # Safety
/// The buffers `fill` points the kernel at must be valid for what `cmd`
/// reads from and writes to them.
unsafe fn call(
    cmd: bpf_cmd,
    fd: i32,
    fill: impl FnOnce(&mut bpf_attr__bindgen_ty_3),
) -> (Option<io::Error>, usize) {
    // SAFETY: an all-zero bpf_attr is the kernel's "unset" for every
    // field a command does not read.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: the union's member the batch commands read.
    let batch = unsafe { &mut attr.batch };
    batch.map_fd = fd as u32;
    fill(batch);
    // SAFETY: `attr` is a bpf_attr this long; the buffers are the caller's.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            &mut attr as *mut bpf_attr,
            size_of::<bpf_attr>(),
        )
    };
    let err = (r < 0).then(io::Error::last_os_error);
    // SAFETY: the member written above, which the kernel updated.
    (err, unsafe { attr.batch.count } as usize)
}
