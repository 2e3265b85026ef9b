//! Integration tests: the real binary against real HTTP servers on loopback.

mod apt_sync;
mod cli;
mod faults;
mod images;
mod live;
mod operability;
mod support;
mod verify;
