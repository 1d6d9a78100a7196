"""Click-To-Call-In: groups of numbers to dial, requests with access codes and expiry."""
