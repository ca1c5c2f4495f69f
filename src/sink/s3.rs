//! Upload to S3 through an assumed IAM role (see the "Uploading to S3" README section).
