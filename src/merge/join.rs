//! The one-pass join of two path-sorted streams: for every path in either, what the
//! published snapshot holds and what the next one wants.

use std::cmp::Ordering;
use std::iter::Peekable;

use super::MergeError;
use crate::manifest::Entry;
use crate::relpath::RelPath;

/// One path of the union, with its entry on each side that has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub path: RelPath,
    pub published: Option<Entry>,
    pub wanted: Option<Entry>,
}

/// Joins `published` and `wanted`, both sorted by path with each path once.
pub fn join<P, W>(published: P, wanted: W) -> Join<P, W>
where
    P: Iterator<Item = Result<(RelPath, Entry), MergeError>>,
    W: Iterator<Item = Result<(RelPath, Entry), MergeError>>,
{
    Join {
        published: published.peekable(),
        wanted: wanted.peekable(),
    }
}

pub struct Join<P: Iterator, W: Iterator> {
    published: Peekable<P>,
    wanted: Peekable<W>,
}

impl<P, W> Iterator for Join<P, W>
where
    P: Iterator<Item = Result<(RelPath, Entry), MergeError>>,
    W: Iterator<Item = Result<(RelPath, Entry), MergeError>>,
{
    type Item = Result<Joined, MergeError>;

    fn next(&mut self) -> Option<Self::Item> {
        // An error on either side ends the join with it.
        if let Some(Err(_)) = self.published.peek() {
            return self.published.next().and_then(Result::err).map(Err);
        }
        if let Some(Err(_)) = self.wanted.peek() {
            return self.wanted.next().and_then(Result::err).map(Err);
        }
        let order = match (self.published.peek(), self.wanted.peek()) {
            (Some(Ok((p, _))), Some(Ok((w, _)))) => p.cmp(w),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            _ => return None,
        };
        let (path, published, wanted) = match order {
            Ordering::Less => {
                let (path, e) = ok(&mut self.published)?;
                (path, Some(e), None)
            }
            Ordering::Greater => {
                let (path, e) = ok(&mut self.wanted)?;
                (path, None, Some(e))
            }
            Ordering::Equal => {
                let (path, p) = ok(&mut self.published)?;
                let (_, w) = ok(&mut self.wanted)?;
                (path, Some(p), Some(w))
            }
        };
        Some(Ok(Joined {
            path,
            published,
            wanted,
        }))
    }
}

/// The next record of a side already peeked at as Ok.
fn ok<I>(it: &mut Peekable<I>) -> Option<(RelPath, Entry)>
where
    I: Iterator<Item = Result<(RelPath, Entry), MergeError>>,
{
    it.next()?.ok()
}
