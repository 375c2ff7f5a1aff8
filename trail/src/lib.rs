//! writelane-trail: find who collides with whom on IAM entities, from CloudTrail.
