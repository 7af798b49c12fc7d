import unittest

from hello import greet


class GreetTest(unittest.TestCase):
    def test_default_greeting(self) -> None:
        self.assertEqual(greet("Ada"), "Hello, Ada!")

    def test_custom_greeting(self) -> None:
        self.assertEqual(greet("Ada", "Ahoy"), "Ahoy, Ada!")


if __name__ == "__main__":
    unittest.main()
