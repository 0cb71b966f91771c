"""The one Stripe client, and Stripe's enumerations read from stripe-python."""
