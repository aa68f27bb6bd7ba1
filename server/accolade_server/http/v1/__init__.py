"""Connect handlers generated from protos/accolade/v1. Do not edit."""
