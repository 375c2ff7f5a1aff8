//! writelane-trail: find who collides with whom on IAM entities, from CloudTrail.

pub mod report;
