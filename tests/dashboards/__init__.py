"""Tests of the Grafana dashboards in charts/dialback/dashboards."""
