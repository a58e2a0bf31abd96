"""Trial patients, enrolment, dose cohorts, dose calculation, prescriptions and bag allocation (issue 6)."""
