"""Creates what the upload tests need on a fresh moto server, with auth enforced.

The first three calls are unauthenticated (INITIAL_NO_AUTH_ACTION_COUNT=3) and create an
admin user; everything else is created with the admin's keys, so moto checks every request.
Writes the endpoint, keys, roles and external IDs as JSON for the tests.
"""
import json
import sys

import boto3

ENDPOINT, OUT = sys.argv[1], sys.argv[2]
REGION = "us-east-1"
BUCKET = "s3actions-test"


def client(service, keys=None):
    kw = {"endpoint_url": ENDPOINT, "region_name": REGION}
    if keys:
        kw.update(aws_access_key_id=keys[0], aws_secret_access_key=keys[1])
    else:
        kw.update(aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
    return boto3.client(service, **kw)


def doc(statements):
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


iam0 = client("iam")
iam0.create_user(UserName="admin")
k = iam0.create_access_key(UserName="admin")["AccessKey"]
admin = (k["AccessKeyId"], k["SecretAccessKey"])
iam0.put_user_policy(
    UserName="admin", PolicyName="all",
    PolicyDocument=doc([{"Effect": "Allow", "Action": "*", "Resource": "*"}]),
)

iam = client("iam", admin)
s3 = client("s3", admin)
s3.create_bucket(Bucket=BUCKET)

caller = iam.create_user(UserName="caller")["User"]["Arn"]
k = iam.create_access_key(UserName="caller")["AccessKey"]
caller_keys = (k["AccessKeyId"], k["SecretAccessKey"])
iam.put_user_policy(
    UserName="caller", PolicyName="assume",
    PolicyDocument=doc([{"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:GetCallerIdentity"], "Resource": "*"}]),
)


def role(name, external_id, permissions, principal=None):
    trust = doc([{
        "Effect": "Allow",
        "Principal": {"AWS": principal or caller},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
    }])
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    iam.put_role_policy(RoleName=name, PolicyName="permissions", PolicyDocument=doc(permissions))
    return arn


WRITE = ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
writer = role("writer", "ext-good", [
    {"Effect": "Allow", "Action": WRITE, "Resource": ["arn:aws:s3:::%s/*" % BUCKET, "arn:aws:s3:::missing-bucket-*/*"]},
])
limited = role("limited", "ext-good", [
    {"Effect": "Allow", "Action": WRITE, "Resource": "arn:aws:s3:::%s/allowed/*" % BUCKET},
])
intermediate = role("intermediate", "ext-mid", [
    {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"},
])
chained = role("chained", "ext-chain", [
    {"Effect": "Allow", "Action": WRITE, "Resource": "arn:aws:s3:::%s/*" % BUCKET},
], principal="*")

# The archive: another bucket, read through its own role (archive tests), as a Segment
# classic archive in another account would be.
ARCHIVE = "s3actions-archive"
s3.create_bucket(Bucket=ARCHIVE)
READ = ["s3:GetObject"]
archive_reader = role("archive-reader", "ext-archive", [
    {"Effect": "Allow", "Action": READ, "Resource": "arn:aws:s3:::%s/*" % ARCHIVE},
    {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::%s" % ARCHIVE},
])

with open(OUT, "w") as f:
    json.dump({
        "endpoint": ENDPOINT,
        "region": REGION,
        "bucket": BUCKET,
        "archive_bucket": ARCHIVE,
        "admin": {"access_key_id": admin[0], "secret_access_key": admin[1]},
        "caller": {"arn": caller, "access_key_id": caller_keys[0], "secret_access_key": caller_keys[1]},
        "roles": {
            "writer": {"arn": writer, "external_id": "ext-good"},
            "limited": {"arn": limited, "external_id": "ext-good"},
            "intermediate": {"arn": intermediate, "external_id": "ext-mid"},
            "chained": {"arn": chained, "external_id": "ext-chain"},
            "archive-reader": {"arn": archive_reader, "external_id": "ext-archive"},
        },
    }, f, indent=2)
