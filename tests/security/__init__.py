"""Attacks on the trust boundaries (issue 13): each test performs one and checks it fails."""
