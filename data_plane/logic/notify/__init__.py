"""Offline push notifications: queueing for receivers with no online device, the
providers' request formats (HTTP, FCM v1), and the dispatcher that sends them."""
