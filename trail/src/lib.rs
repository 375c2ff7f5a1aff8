//! writelane-trail: find who collides with whom on IAM entities, from CloudTrail.

pub mod extract;
pub mod html;
pub mod record;
pub mod report;
pub mod time;
