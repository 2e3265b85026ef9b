//! Integration tests: the real binary against real HTTP servers on loopback.

mod apt_sync;
mod cli;
mod faults;
mod generators;
mod images;
mod journal;
mod layouts;
mod live;
mod live_images;
mod logged_nginx;
mod migration;
mod operability;
mod probe;
mod properties;
mod real_os_list;
mod reliability;
mod s3;
mod signed_metadata;
mod status_page;
mod support;
mod verify;
