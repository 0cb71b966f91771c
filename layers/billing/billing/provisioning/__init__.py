"""The deploy path: the custom resources, their specs, and answering CloudFormation."""
