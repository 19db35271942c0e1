"""A realistic init: the handler module imports boto3 (and botocore) at load."""

import boto3  # noqa: F401


def echo(event, context):
    return event
