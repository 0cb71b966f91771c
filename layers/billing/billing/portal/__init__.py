"""The signed-in user's side: portal sessions and SetupIntents, flow deep links, return URLs."""
