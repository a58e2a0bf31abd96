def test_the_first_screen_invites_to_sign_in(app):
    response = app.test_client().get("/")
    assert response.status_code == 200
    assert b"Sign in" in response.data


def test_a_signed_in_technician_sees_the_home_page_with_their_name(client_as):
    response = client_as("technician").get("/")
    assert b"Welcome, Technician" in response.data
